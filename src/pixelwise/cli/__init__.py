"""Command-line interface: a thin argparse layer mapping flags to dataclass configs."""
