"""The book's runs as named option sets (fully connected and convolutional)."""
