"""Write the small tables `data/` ships, from scikit-learn's bundled copies
(no network): `data/diabetes.csv` (Efron et al. 2004: 442 patients, ten
baseline measurements, the disease progression one year later as `target`;
the raw values, `load_diabetes(scaled=False)`).

    pip install scikit-learn && python3 tools/make_tables.py
"""
import csv
import os

from sklearn.datasets import load_diabetes


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    d = load_diabetes(scaled=False)
    path = os.path.join(root, "diabetes.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(d.feature_names) + ["target"])
        for row, t in zip(d.data, d.target):
            w.writerow([repr(float(v)) for v in row] + [repr(float(t))])
    print(f"wrote {path}: {len(d.target)} rows")


if __name__ == "__main__":
    main()
