"""The numbers a CNN must beat: always the most frequent class, and linear models on raw pixels and on HOG features
(the classic pre-deep-learning FER baseline), fitted on train and scored on val and test, the CNN's protocol."""
from __future__ import annotations

import numpy as np

from fernb.data import FERData


def majority(train: FERData, *scored: FERData) -> list[float]:
    """Accuracy of always answering train's most frequent class, on each split scored."""
    top = int(np.bincount(train.labels.numpy()).argmax())
    return [float((s.labels.numpy() == top).mean()) for s in scored]


def pixels(data: FERData) -> np.ndarray:
    """Each face as 2,304 numbers in [0, 1]."""
    return data.images.reshape(len(data), -1).numpy().astype(np.float32) / 255


def hog(data: FERData) -> np.ndarray:
    """Each face's histogram of oriented gradients (scikit-image: 8x8-pixel cells, 9 orientations)."""
    from skimage.feature import hog as hog_of
    return np.stack([hog_of(face, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
                     for face in data.images.numpy()]).astype(np.float32)


def linear(features, train: FERData, *scored: FERData, max_iter: int = 200) -> list[float]:
    """Accuracy on each split scored of a logistic regression (scikit-learn) fitted on train's features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    model.fit(features(train), train.labels.numpy())
    return [float(model.score(features(s), s.labels.numpy())) for s in scored]
