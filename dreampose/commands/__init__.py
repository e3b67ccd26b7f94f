"""One module per `dreampose` subcommand; see `dreampose.cli.COMMANDS`."""
