from mlplane.cli.main import entrypoint

entrypoint()
