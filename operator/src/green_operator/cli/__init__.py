"""The `green-operator` command and its subcommands."""
