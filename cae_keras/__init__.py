"""cae_keras: convolutional autoencoders for visual defect detection, taught in notebooks.

Importing the package has no side effects: no seeding, no TensorFlow import, no plot settings.
Modules that need TensorFlow import it themselves.
"""

__version__ = "0.1.0"
