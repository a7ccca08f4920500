"""CLI for mbutils.data (placeholder: filled in by the data work)."""


def add_parser(subparsers):
    pass
