"""Keras-style layers. Import them as you would from ``keras.layers``."""
from neurec.layers.base import KerasTensor, Layer
from neurec.layers.core import (
                                Activation,
                                Dense,
                                Dropout,
                                Embedding,
                                Flatten,
                                Input,
                                InputLayer,
                                Reshape,
)
from neurec.layers.merging import Add, Average, Concatenate, Dot, Multiply, Subtract

__all__ = ["Layer", "KerasTensor", "Input", "InputLayer", "Embedding", "Dense", "Flatten",
           "Reshape", "Activation", "Dropout", "Dot", "Concatenate", "Multiply", "Add",
           "Subtract", "Average"]
