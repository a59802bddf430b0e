extension DICOMFile {
    /// The image headers of this file: one for a classic file, one per frame for an
    /// enhanced multi-frame file.
    /// - Throws: `DICOMError.missingAttribute` when a UID needed for grouping is absent.
    public func imageHeaders() throws(DICOMError) -> [ImageHeader] {
        let dataset = self.dataset
        let base = try baseHeader(dataset)
        let frameCount = base.numberOfFrames
        guard let perFrame = dataset.items(.perFrameFunctionalGroupsSequence), !perFrame.isEmpty else {
            // Classic multi-frame (or single-frame) image: every frame shares the file's attributes.
            return (0..<frameCount).map { index in
                var header = base
                header.frame = index
                return header
            }
        }
        let shared = dataset.firstItem(.sharedFunctionalGroupsSequence)
        let frames = min(frameCount, perFrame.count)
        return (0..<frames).map { index in
            FunctionalGroups(frame: perFrame[index], shared: shared).apply(to: base, frame: index)
        }
    }

    private func baseHeader(_ dataset: DICOMItem) throws(DICOMError) -> ImageHeader {
        func required(_ tag: Tag, _ name: String) throws(DICOMError) -> String {
            guard let value = dataset.text(tag) else {
                throw DICOMError.missingAttribute(path: path, attribute: name, tag: tag)
            }
            return value
        }
        let meta = metaInformation
        let philips = PhilipsSeries.item(dataset)
        return ImageHeader(
            path: path,
            frame: 0,
            // Checked at open against what the file can hold: the headers below are one per frame.
            numberOfFrames: numberOfFrames,
            transferSyntaxUID: transferSyntaxUID,
            sopClassUID: dataset.text(.sopClassUID) ?? meta.text(.mediaStorageSOPClassUID),
            sopInstanceUID: try required(.sopInstanceUID, "SOPInstanceUID"),
            seriesInstanceUID: try required(.seriesInstanceUID, "SeriesInstanceUID"),
            studyInstanceUID: try required(.studyInstanceUID, "StudyInstanceUID"),
            patientID: dataset.text(.patientID),
            studyDate: dataset.text(.studyDate),
            accessionNumber: dataset.text(.accessionNumber),
            modality: dataset.text(.modality),
            seriesNumber: dataset.integer(.seriesNumber),
            instanceNumber: dataset.integer(.instanceNumber),
            acquisitionTime: dataset.text(.acquisitionTime),
            seriesDescription: dataset.text(.seriesDescription),
            protocolName: dataset.text(.protocolName),
            manufacturer: dataset.text(.manufacturer),
            manufacturerModelName: dataset.text(.manufacturerModelName),
            magneticFieldStrength: dataset.number(.magneticFieldStrength),
            bodyPartExamined: dataset.text(.bodyPartExamined),
            imageType: dataset.strings(.imageType),
            scanningSequence: dataset.strings(.scanningSequence),
            sequenceVariant: dataset.strings(.sequenceVariant),
            scanOptions: dataset.strings(.scanOptions),
            mrAcquisitionType: dataset.text(.mrAcquisitionType),
            sequenceName: dataset.text(.sequenceName) ?? dataset.text(.pulseSequenceName),
            repetitionTime: dataset.number(.repetitionTime),
            echoTime: dataset.number(.echoTime),
            inversionTime: dataset.number(.inversionTime),
            echoTrainLength: dataset.number(.echoTrainLength),
            flipAngle: dataset.number(.flipAngle),
            sliceThickness: dataset.number(.sliceThickness),
            pixelSpacing: dataset.numbers(.pixelSpacing),
            imageOrientationPatient: dataset.numbers(.imageOrientationPatient),
            imagePositionPatient: dataset.numbers(.imagePositionPatient),
            photometricInterpretation: dataset.text(.photometricInterpretation),
            rows: dataset.integer(.rows),
            columns: dataset.integer(.columns),
            contrastBolusAgent: dataset.text(.contrastBolusAgent),
            complexImageComponent: ComplexImageComponent.read(from: dataset),
            diffusionBValue: DiffusionBValue.read(from: dataset),
            acquisitionContrast: dataset.text(.acquisitionContrast)?.uppercased()
                ?? philips?.text(.acquisitionContrast)?.uppercased(),
            diffusionDirectionality: DiffusionAttributes.directionality(dataset.firstItem(.mrDiffusionSequence))
                ?? dataset.text(.diffusionDirectionality)?.uppercased()
                ?? philips?.text(.diffusionDirectionality)?.uppercased(),
            diffusionGradientOrientation: dataset.numbers(.diffusionGradientOrientation)
                ?? DiffusionAttributes.gradientOrientation(dataset.firstItem(.mrDiffusionSequence)),
            echoPulseSequence: dataset.text(.echoPulseSequence)?.uppercased()
                ?? philips?.text(.echoPulseSequence)?.uppercased(),
            echoPlanarPulseSequence: dataset.text(.echoPlanarPulseSequence)?.uppercased()
                ?? philips?.text(.echoPlanarPulseSequence)?.uppercased(),
            numberOfTemporalPositions: dataset.integer(.numberOfTemporalPositions),
            temporalPositionIdentifier: dataset.integer(.temporalPositionIdentifier),
            imagesInAcquisition: dataset.integer(.imagesInAcquisition),
            rescaleSlope: dataset.number(.rescaleSlope) ?? 1,
            rescaleIntercept: dataset.number(.rescaleIntercept) ?? 0
        )
    }
}

/// The b-value of a diffusion-weighted image: the standard attribute, else the vendor's private one.
enum DiffusionBValue {
    /// Private b-value elements by vendor (PS3.5 private blocks are found through their creator).
    private static let privateElements: [(group: UInt16, creator: String, offset: UInt8, encoding: BinaryEncoding)] = [
        (0x0019, "SIEMENS MR HEADER", 0x0C, .text),        // (0019,100C) B_value, IS
        (0x0043, "GEMS_PARM_01", 0x39, .text),             // (0043,1039) slop_int_6..9, IS; first value
        (0x2001, "Philips Imaging DD 001", 0x03, .float32), // (2001,1003) Diffusion B-Factor, FL
    ]

    /// GE adds 10^9 to the b-value in some software versions to flag the scan mode.
    private static let geOffset = 1_000_000_000.0

    static func read(from item: DICOMItem) -> Double? {
        if let standard = item.number(.diffusionBValue, encoding: .float64) { return standard }
        for element in privateElements {
            guard let tag = item.privateTag(group: element.group, creator: element.creator, offset: element.offset),
                  var value = item.number(tag, encoding: element.encoding) else { continue }
            if element.group == 0x0043, value >= geOffset { value = value.truncatingRemainder(dividingBy: geOffset) }
            return value
        }
        // De-identification removes private elements but keeps SequenceName (PS3.15 lists it
        // nowhere), where Siemens writes the b-value too, as dcm2niix reads it.
        return fromSiemensSequenceName(item.text(.sequenceName))
    }

    /// The b-value in a Siemens diffusion SequenceName: `*ep_b1000t`, `ep_b0`, `*re_b800#2`
    /// (EPI, RESOLVE): the digits after `_b` that follows a two-letter sequence code.
    static func fromSiemensSequenceName(_ name: String?) -> Double? {
        guard let characters = name.map({ Array($0.lowercased()) }) else { return nil }
        for index in characters.indices.dropLast() where characters[index] == "_" && characters[index + 1] == "b" {
            let code = String(characters[..<index].filter(\.isLetter).suffix(2))
            let digits = characters[(index + 2)...].prefix { $0.isNumber }
            guard ["ep", "re", "ez"].contains(code), !digits.isEmpty else { continue }
            return Double(String(digits))
        }
        return nil
    }
}

/// The MR diffusion macro (PS3.3 C.8.13.5.9) of a frame or of a classic file's top level.
enum DiffusionAttributes {
    static func directionality(_ diffusion: DICOMItem?) -> String? {
        diffusion?.text(.diffusionDirectionality)?.uppercased()
    }

    static func gradientOrientation(_ diffusion: DICOMItem?) -> [Double]? {
        diffusion?.firstItem(.diffusionGradientDirectionSequence)?.numbers(.diffusionGradientOrientation)
    }
}

/// Philips' private MR series sequence (2005,140F) ("Philips MR Imaging DD 005", element 0F): classic
/// Philips files keep the enhanced MR attributes there (AcquisitionContrast, EchoPlanarPulseSequence …),
/// where dcm2niix reads them. Private, so de-identification removes it.
enum PhilipsSeries {
    static func item(_ dataset: DICOMItem) -> DICOMItem? {
        guard let tag = dataset.privateTag(group: 0x2005, creator: "Philips MR Imaging DD 005", offset: 0x0F) else { return nil }
        return dataset.firstItem(tag)
    }
}

/// Which part of complex MR data an image holds.
enum ComplexImageComponent {
    /// GE (0043,102F) "private image type": 0 magnitude, 1 phase, 2 real, 3 imaginary.
    private static let geValues = ["MAGNITUDE", "PHASE", "REAL", "IMAGINARY"]

    static func read(from item: DICOMItem) -> String? {
        if let standard = item.text(.complexImageComponent) { return standard.uppercased() }
        guard let tag = item.privateTag(group: 0x0043, creator: "GEMS_PARM_01", offset: 0x2F),
              let value = item.number(tag, encoding: .int16), let code = Int(exactly: value),
              geValues.indices.contains(code) else { return nil }
        return geValues[code]
    }
}

/// The functional groups of one frame of an enhanced multi-frame image (PS3.3 C.7.6.16):
/// a macro is looked up in the frame's own item first, then in the shared item.
struct FunctionalGroups {
    let frame: DICOMItem
    let shared: DICOMItem?

    /// The first item of the functional-group macro `sequence`, per-frame before shared.
    func macro(_ sequence: Tag) -> DICOMItem? {
        frame.firstItem(sequence) ?? shared?.firstItem(sequence)
    }

    func number(_ sequence: Tag, _ tag: Tag) -> Double? { macro(sequence)?.number(tag) }

    func apply(to base: ImageHeader, frame index: Int) -> ImageHeader {
        var header = base
        header.frame = index
        if let measures = macro(.pixelMeasuresSequence) {
            header.pixelSpacing = measures.numbers(.pixelSpacing) ?? header.pixelSpacing
            header.sliceThickness = measures.number(.sliceThickness) ?? header.sliceThickness
        }
        header.imageOrientationPatient = macro(.planeOrientationSequence)?.numbers(.imageOrientationPatient)
            ?? header.imageOrientationPatient
        header.imagePositionPatient = macro(.planePositionSequence)?.numbers(.imagePositionPatient)
            ?? header.imagePositionPatient
        if let timing = macro(.mrTimingAndRelatedParametersSequence) {
            header.repetitionTime = timing.number(.repetitionTime) ?? header.repetitionTime
            header.flipAngle = timing.number(.flipAngle) ?? header.flipAngle
            header.echoTrainLength = timing.number(.echoTrainLength) ?? header.echoTrainLength
        }
        header.echoTime = number(.mrEchoSequence, .effectiveEchoTime) ?? header.echoTime
        header.inversionTime = number(.mrModifierSequence, .inversionTimes) ?? header.inversionTime
        if let diffusion = macro(.mrDiffusionSequence) {
            if let bValue = diffusion.number(.diffusionBValue) { header.diffusionBValue = bValue }
            header.diffusionDirectionality = DiffusionAttributes.directionality(diffusion) ?? header.diffusionDirectionality
            header.diffusionGradientOrientation = DiffusionAttributes.gradientOrientation(diffusion) ?? header.diffusionGradientOrientation
        }
        if let frameType = macro(.mrImageFrameTypeSequence) {
            header.imageType = frameType.strings(.frameType) ?? header.imageType
            header.complexImageComponent = frameType.text(.complexImageComponent)?.uppercased() ?? header.complexImageComponent
            header.acquisitionContrast = frameType.text(.acquisitionContrast)?.uppercased() ?? header.acquisitionContrast
        }
        if let content = macro(.frameContentSequence) {
            header.temporalPositionIdentifier = content.integer(.temporalPositionIndex) ?? header.temporalPositionIdentifier
        }
        if let transformation = macro(.pixelValueTransformationSequence) {
            header.rescaleSlope = transformation.number(.rescaleSlope) ?? header.rescaleSlope
            header.rescaleIntercept = transformation.number(.rescaleIntercept) ?? header.rescaleIntercept
        }
        return header
    }
}
