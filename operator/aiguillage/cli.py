"""Entry point."""


def main() -> None:
    pass
