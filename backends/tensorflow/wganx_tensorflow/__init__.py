"""TensorFlow backend for wganx. Importing this package does not import tensorflow."""
