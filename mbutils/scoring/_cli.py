"""CLI for mbutils.scoring (placeholder: filled in by the scoring work)."""


def add_parser(subparsers):
    pass
