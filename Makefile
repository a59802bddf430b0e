# mrsort: build, test and demo entry points (the README names these).
SWIFT ?= swift
PYTHON ?= python3
REALDATA ?= ../shared/realdata
CORPUS ?= corpus
STUDIES ?= 300
MRSORT = $$($(SWIFT) build -c release --show-bin-path)/mrsort

.PHONY: build release test test-swift test-python demo benchmark corpus forest-model clean
.PHONY: deb test-package

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --product mrsort

## Every test: the Swift package and the training code.
test: test-swift test-python

test-swift:
	MRSORT_REALDATA=$(abspath $(REALDATA)) $(SWIFT) test

test-python:
	MRSORT_REALDATA=$(abspath $(REALDATA)) $(PYTHON) -m pytest -q training/tests

## The main job on a sample drop folder: classify every series of the real-data set with the shipped model.
demo: release
	$(MRSORT) classify $(REALDATA)

## The synthetic training corpus (training/synth), deterministic for its seed.
corpus:
	test -f $(CORPUS)/labels.csv || $(PYTHON) -m training.synth --out $(CORPUS) --studies $(STUDIES) --seed 0 --jobs 2

## The shipped metadata forest: features by mrsort itself, training by scikit-learn, figures
## in training/forest/REPORT.md, the Swift parity fixture beside the tests.
forest-model: release corpus
	$(MRSORT) dataset $(CORPUS) --out $(CORPUS)/features.safetensors
	$(MRSORT) dataset $(REALDATA) --vocabulary $(CORPUS)/features.safetensors --out $(CORPUS)/realdata-features.safetensors
	$(PYTHON) -m training.forest.train --train $(CORPUS)/features.safetensors --real $(CORPUS)/realdata-features.safetensors \
		--out models/forest.safetensors --fixture Tests/ClassificationTests/Fixtures/forest-parity.safetensors \
		--report training/forest/REPORT.md --figure training/forest/feature-importance.png

## The Debian package: build/mrsort_<version>-1_<arch>.deb (packaging/README.md).
deb:
	SWIFT=$(SWIFT) packaging/build-deb.sh

## Build the package, lint it, install it into a clean Debian 12 root, run the installed
## agent on a real series, remove and purge it (root, network to a Debian mirror).
test-package:
	SWIFT=$(SWIFT) MRSORT_REALDATA=$(abspath $(REALDATA)) packaging/test-package.sh

## Header-read throughput, mrsort beside pydicom.
benchmark:
	benchmarks/header-read.sh $(REALDATA)

clean:
	rm -rf .build
