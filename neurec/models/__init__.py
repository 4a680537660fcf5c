"""Models: the functional ``Model``, ``Sequential``, saving, and the NCF model zoo."""
from neurec.models._keras_api import model_from_json
from neurec.models.model import Model
from neurec.models.saving import load_model
from neurec.models.sequential import Sequential
from neurec.models.zoo import GMF, MF, MLP, NeuMF, from_ials, neumf_from_pretrained

__all__ = ["Model", "Sequential", "load_model", "model_from_json", "GMF", "MLP", "NeuMF", "MF",
           "neumf_from_pretrained", "from_ials"]
