"""The staff console: server-rendered pages that call the three services with the signed-in
person's token; it keeps no business data of its own."""
