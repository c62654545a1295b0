"""The data layer: the authors' LMDB splits (v3/v4, pre-v3 refused), converters from the raw datasets,
the generated multi-object data sets (synthetic, textured), the train/val transforms and the collate function.

    ds = open_split(data_dir, "coco", "val")          # items {"image": (3,256,256) f32, "segment": (256,256,S) bool}
    loader = DataLoader(ds, batch_size=32, collate_fn=collate)
    ds.card                                           # what the numbers were computed on
"""

from harness.data import synthetic, textured
from harness.data.card import data_card
from harness.data.collate import collate
from harness.data.datasets import LmdbSplit, open_split
from harness.data.errors import CorruptDataError, DataError, DataFileMissingError, RawDataError, UnsupportedFormatError
from harness.data.paths import split_path
from harness.data.specs import DATASETS, DatasetSpec
from harness.data.synthetic import SynthConfig, write_synthetic
from harness.data.textured import TexturedConfig, write_textured

# Generated data sets: dataset name → (generator config class, writer, the parameters a card records).
GENERATORS = {"synthetic": (SynthConfig, write_synthetic, synthetic.generator_params),
              "textured": (TexturedConfig, write_textured, textured.generator_params)}

__all__ = [
    "DATASETS", "GENERATORS", "CorruptDataError", "DataError", "DataFileMissingError", "DatasetSpec", "LmdbSplit",
    "RawDataError", "SynthConfig", "TexturedConfig", "UnsupportedFormatError", "collate", "data_card",
    "open_split", "split_path", "write_synthetic", "write_textured",
]
