# mrsort: build, test and demo entry points (the README names these).
SWIFT ?= swift
PYTHON ?= python3
REALDATA ?= ../shared/realdata

.PHONY: build release test test-swift test-python demo benchmark clean

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

## The agent's main job on a sample drop folder.
demo: release
	$$($(SWIFT) build -c release --show-bin-path)/mrsort inspect $(REALDATA)/dcm_qa_xa30__S12_DWI_dir80_PA_TRACEW_mf $(REALDATA)/pydicom-data__S1_MR2_UNCR | head -120

## Header-read throughput, mrsort beside pydicom.
benchmark:
	benchmarks/header-read.sh $(REALDATA)

clean:
	rm -rf .build
