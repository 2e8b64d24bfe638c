"""The standard wganx plugins, written once against the neutral ops."""
