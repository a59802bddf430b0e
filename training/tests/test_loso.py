"""training.forest.loso: the column ablation keeps rows and the other columns as they are."""
import numpy as np

from training.forest import dataset as ds
from training.forest import loso


def test_drop_columns_removes_groups_by_prefix():
    columns = ["image_type=M", "b_value", "diffusion", "acquisition_contrast=T1", "acquisition_contrast#other",
               "complex_component=PHASE", "complex_part=PHASE"]
    features = np.arange(2 * len(columns), dtype=np.float32).reshape(2, len(columns))
    data = ds.Dataset(features=features, sequence=np.array([0, 1]), orientation=np.array([0, 0]), series=np.array([0, 0]),
                      columns=columns, vocabulary={}, sequences=["a", "b"], orientations=["axial"], series_uids=["1"],
                      series_dirs=["s__x"], series_vendors=["siemens"], series_subjects=["head"])
    out = loso.drop_columns(data, ["diffusion", "acquisition_contrast", "complex_part"])
    assert out.columns == ["image_type=M", "b_value", "complex_component=PHASE"]
    np.testing.assert_array_equal(out.features, features[:, [0, 1, 5]])
    np.testing.assert_array_equal(out.sequence, data.sequence)
    assert loso.drop_columns(data, []) is data
