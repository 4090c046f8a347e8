from polymodal.cli import entrypoint

entrypoint()
