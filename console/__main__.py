"""`python -m console`: serve the console on TCI_CONSOLE_PORT (default 8000)."""

from __future__ import annotations

import uvicorn

from console.settings import ConsoleSettings


def main() -> None:
    settings = ConsoleSettings()
    uvicorn.run(
        "console.main:create_app",
        factory=True,
        host="127.0.0.1",
        port=settings.console_port,
        server_header=False,
    )


if __name__ == "__main__":
    main()
