"""``python -m client``: the ``registry-client`` CLI."""

from client.cli import main

main(prog_name="registry-client")
