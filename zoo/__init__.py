"""The model zoo: one file per model family, each registering its models with `trtnet.zoo.register`."""
