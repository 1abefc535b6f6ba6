"""Reading a picture: one digit made MNIST-like, and a whole number cut into digits."""
