"""Series accuracy of `mrsort classify --csv` output against a labels.csv.

    mrsort classify DIR --csv > predictions.csv
    python -m training.score_classify --labels DIR/labels.csv --predictions predictions.csv

Matches series by series_uid; prints overall sequence and orientation accuracy and the
accuracy over the pre/post-contrast T1 classes, where study context matters.
"""
import argparse
import csv

CONTRAST = {"t1_pre", "t1_post", "t1_iac_pre", "t1_iac_post", "t1_3d_pre", "t1_3d_post", "vibe_pre", "vibe_post"}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", required=True)
    parser.add_argument("--predictions", required=True)
    args = parser.parse_args(argv)
    with open(args.labels, newline="") as f:
        labels = {row["series_uid"]: row for row in csv.DictReader(f)}
    with open(args.predictions, newline="") as f:
        predictions = {row["series_uid"]: row for row in csv.DictReader(f)}
    common = [uid for uid in labels if uid in predictions]
    sequence = sum(labels[u]["sequence"] == predictions[u]["sequence"] for u in common)
    orientation = sum(labels[u]["orientation"] == predictions[u]["orientation"] for u in common)
    contrast = [u for u in common if labels[u]["sequence"] in CONTRAST]
    contrast_right = sum(labels[u]["sequence"] == predictions[u]["sequence"] for u in contrast)
    print(f"series: {len(common)} of {len(labels)} labelled")
    print(f"sequence accuracy: {sequence / len(common):.4f} ({sequence}/{len(common)})")
    print(f"orientation accuracy: {orientation / len(common):.4f} ({orientation}/{len(common)})")
    if contrast:
        print(f"pre/post-contrast T1 classes: {contrast_right / len(contrast):.4f} ({contrast_right}/{len(contrast)})")


if __name__ == "__main__":
    main()
