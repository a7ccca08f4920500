"""CLI for mbutils.models (placeholder: filled in by the models work)."""


def add_parser(subparsers):
    pass
