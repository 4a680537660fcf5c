"""Data sets that ship with neurec.

``make_purchases`` generates a seeded synthetic e-commerce purchase log with
learnable structure (popularity, customer segments, personal taste, repeat
and complementary purchases, sessions); ``load_purchases`` returns the
default one that ``python -m neurec`` trains on. No download, no licence
restrictions.
"""
from neurec.datasets.ecommerce import EcommerceData, load_purchases, make_purchases

__all__ = ["EcommerceData", "make_purchases", "load_purchases"]
