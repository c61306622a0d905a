"""The client side: transports to a pyvirtd and the Python API built on them."""
