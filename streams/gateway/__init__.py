"""The camera gateway: frames to windows, encoded and published on the frames topic."""
