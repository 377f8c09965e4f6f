"""The console's message catalogues, one Python dict per language, keyed alike."""
