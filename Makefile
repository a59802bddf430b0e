# mrsort: build, test and demo entry points (the README names these).
SWIFT ?= swift
# The training code and its tests run in a virtual environment the Makefile makes (`make venv`):
# Debian's own Python is externally managed (PEP 668) and refuses `pip install`.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
REALDATA ?= ../shared/realdata
CORPUS ?= corpus
STUDIES ?= 300
MRSORT = $$($(SWIFT) build -c release --show-bin-path)/mrsort

.PHONY: build release test test-swift test-python demo classify-demo benchmark corpus forest-model heldout cnn-model clean setup venv loso
.PHONY: deb test-package

## What a fresh Debian 12 machine lacks: the build dependencies (apt, as root or through sudo)
## and the Python virtual environment.
setup:
	scripts/setup.sh
	$(MAKE) venv

## The virtual environment with training/requirements.txt (Python 3.11 or later: numpy 2.4 needs it).
venv: $(VENV)/.installed

$(VENV)/.installed: training/requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r training/requirements.txt
	touch $@

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --product mrsort

## Every test: the Swift package and the training code.
test: test-swift test-python

# All suites run in one process, in parallel: the agent's blocking work has threads of its own
# (a dispatch queue), so other tests cannot starve the concurrency pool its event loop runs on.
# The agent's tests run the corpus generator (`python3 -m training.synth`): the environment's
# Python comes first on PATH. Every test is a Swift Testing test: --disable-xctest spares the empty
# XCTest run ("Executed 0 tests") before each.
test-swift: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" MRSORT_REALDATA=$(abspath $(REALDATA)) $(SWIFT) test --disable-xctest

test-python: venv
	MRSORT_REALDATA=$(abspath $(REALDATA)) $(PYTHON) -m pytest -q training/tests

## The main job on a sample drop folder: mrsort watch with the default configuration and the
## shipped models sorts real series dropped into a temporary folder (scripts/demo.sh), which is
## removed at the end; DEMO_DIR=a new or empty folder keeps everything there.
DEMO_DIR ?=
demo: release
	scripts/demo.sh "$(MRSORT)" $(REALDATA) $(DEMO_DIR)

## Classify every series of the real-data set with the shipped models.
classify-demo: release
	$(MRSORT) classify $(REALDATA)

## The synthetic training corpus (training/synth), deterministic for its seed.
corpus: venv
	test -f $(CORPUS)/labels.csv || $(PYTHON) -m training.synth --out $(CORPUS) --studies $(STUDIES) --seed 0 --jobs 2

## The shipped metadata forest: features by mrsort itself, training by scikit-learn, figures in
## training/forest/REPORT.md, the Swift parity fixture beside the tests. REAL_TRAIN=1 adds the real
## DICOM series (../shared/realdata, ../shared/realpool/dicom) to the training rows (an experiment
## measured and not shipped yet: training/forest/NOTES.md).
REALPOOL ?= ../shared/realpool/dicom
forest-model: release corpus
	$(MRSORT) dataset $(CORPUS) --out $(CORPUS)/features.safetensors
	$(MRSORT) dataset $(REALDATA) --vocabulary $(CORPUS)/features.safetensors --max-images-per-series 16 --out $(CORPUS)/realdata-features.safetensors
	$(MRSORT) dataset $(REALPOOL) --vocabulary $(CORPUS)/features.safetensors --max-images-per-series 16 --out $(CORPUS)/realpool-features.safetensors
	$(PYTHON) -m training.forest.train --train $(CORPUS)/features.safetensors --real $(CORPUS)/realdata-features.safetensors \
		$(if $(REAL_TRAIN),--real-train $(CORPUS)/realdata-features.safetensors $(CORPUS)/realpool-features.safetensors) \
		--out models/forest.safetensors --fixture Tests/ClassificationTests/Fixtures/forest-parity.safetensors \
		--report training/forest/REPORT.md --figure training/forest/feature-importance.png

## The Debian package: build/mrsort_<version>-1_<arch>.deb (packaging/README.md).
deb:
	SWIFT=$(SWIFT) packaging/build-deb.sh

## Build the package, lint it, install it into a clean Debian 12 root, run the installed
## agent on a real series, remove and purge it (root, network to a Debian mirror).
test-package:
	SWIFT=$(SWIFT) MRSORT_REALDATA=$(abspath $(REALDATA)) packaging/test-package.sh

## An unseen synthetic corpus (other seed) for held-out figures.
HELDOUT ?= heldout
heldout: venv
	test -f $(HELDOUT)/labels.csv || $(PYTHON) -m training.synth --out $(HELDOUT) --studies 40 --seed 1 --jobs 2

## The shipped pixel CNN: slices preprocessed by mrsort itself, training by PyTorch on the CPU
## (pip install -r training/cnn/requirements.txt), export with batch norm folded, the Swift parity
## fixture, figures and saliency maps in training/cnn/REPORT.md.
cnn-model: release corpus heldout
	$(MRSORT) dataset $(CORPUS) --images --max-images-per-series 16 --out $(CORPUS)/images.safetensors
	$(MRSORT) dataset $(HELDOUT) --images --max-images-per-series 16 --out $(HELDOUT)/images.safetensors
	$(MRSORT) dataset $(REALDATA) --images --max-images-per-series 16 --out $(CORPUS)/realdata-images.safetensors
	nice -n 10 $(PYTHON) -m training.cnn.train --train $(CORPUS)/images.safetensors --out models/cnn.safetensors \
		--checkpoint $(CORPUS)/cnn.pt --log training/cnn/training-log.tsv --epochs 60 --minutes 60
	$(PYTHON) -m training.cnn.export --checkpoint $(CORPUS)/cnn.pt --out models/cnn.safetensors \
		--fixture Tests/ClassificationTests/Fixtures/cnn-parity.safetensors --fixture-data $(CORPUS)/realdata-images.safetensors
	$(PYTHON) -m training.cnn.report --model models/cnn.safetensors --log training/cnn/training-log.tsv \
		--held-out $(HELDOUT)/images.safetensors --real $(CORPUS)/realdata-images.safetensors --report training/cnn/REPORT.md \
		--saliency training/cnn/saliency.png --confusion training/cnn/realdata-confusion.png --extra training/cnn/benchmark.md

## Header-read throughput, mrsort beside pydicom.
benchmark:
	benchmarks/header-read.sh $(REALDATA)

clean:
	rm -rf .build

## Leave-one-source-out measure of the forest on the real series and on de-identified copies of
## them (training/forest/LOSO.md): the figure that says how the forest fares on unseen sites.
LOSO ?= /tmp/loso-make
loso: release venv
	test -f $(LOSO)/corpus/labels.csv || $(PYTHON) -m training.synth --out $(LOSO)/corpus --studies 120 --seed 0 --jobs 2
	test -f $(LOSO)/heldout/labels.csv || $(PYTHON) -m training.synth --out $(LOSO)/heldout --studies 30 --seed 1 --jobs 2
	test -d $(LOSO)/deid/realdata || $(PYTHON) -m training.deidentify $(REALDATA) $(LOSO)/deid/realdata
	test -d $(LOSO)/deid/realpool || $(PYTHON) -m training.deidentify ../shared/realpool/dicom $(LOSO)/deid/realpool
	$(PYTHON) -m training.forest.loso --mrsort $(MRSORT) --work $(LOSO)/features --synth $(LOSO)/corpus --heldout $(LOSO)/heldout \
		--variant original=$(REALDATA),../shared/realpool/dicom --variant deid=$(LOSO)/deid/realdata,$(LOSO)/deid/realpool \
		--real-weight 5 --jobs 2 --shipped models/forest.safetensors --out training/forest/LOSO-run.md
