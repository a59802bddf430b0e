import CDCMTK

/// One decoded frame: values after the modality LUT (stored value × RescaleSlope + RescaleIntercept).
public struct PixelFrame: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    /// 1 (grayscale) or 3 (colour, interleaved).
    public var samplesPerPixel: Int
    /// Colour model of `values` (MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, …).
    public var photometricInterpretation: String
    /// rows × columns × samplesPerPixel values, row-major, samples interleaved.
    public var values: [Float]

    /// One value per pixel: the values of a grayscale frame as they are; for colour frames
    /// the luma (ITU-R BT.601 weights for RGB, the Y channel for YBR).
    public func luminance() -> [Float] {
        guard samplesPerPixel == 3 else { return values }
        let count = rows * columns
        var result = [Float](repeating: 0, count: count)
        let isYBR = photometricInterpretation.hasPrefix("YBR")
        values.withUnsafeBufferPointer { source in
            for pixel in 0..<count {
                let r = source[3 * pixel], g = source[3 * pixel + 1], b = source[3 * pixel + 2]
                result[pixel] = isYBR ? r : 0.299 * r + 0.587 * g + 0.114 * b
            }
        }
        return result
    }
}

extension DICOMFile {
    /// Decodes frame `index` (0-based) after the modality LUT.
    ///
    /// The file must be opened with `headerOnly: false`. Uncompressed, RLE, JPEG baseline,
    /// extended and lossless, and JPEG-LS are decoded; JPEG 2000 is refused with
    /// `DICOMError.unsupportedTransferSyntax` (DCMTK's free toolkit has no codec for it).
    /// - Parameter header: the frame's header, whose rescale slope and intercept apply.
    public func frame(_ index: Int, header: ImageHeader) throws(DICOMError) -> PixelFrame {
        guard !isHeaderOnly else {
            throw DICOMError.badPixelData(path: path, reason: "the file was opened header-only")
        }
        var layout = mrs_pixel_layout()
        let (layoutStatus, layoutMessage) = withMessageBuffer { mrs_pixel_layout_get(handle, &layout, $0, $1) }
        guard layoutStatus == MRS_OK else {
            throw DICOMError(status: layoutStatus, path: path, message: layoutMessage)
        }
        guard index >= 0, index < Int(layout.frames) else {
            throw DICOMError.frameOutOfRange(path: path, frame: index, frames: Int(layout.frames))
        }
        let samples = Int(layout.samples_per_pixel)
        let count = Int(layout.rows) * Int(layout.columns) * samples
        var values = [Float](repeating: 0, count: count)
        let (status, message) = withMessageBuffer { buffer, size in
            values.withUnsafeMutableBufferPointer {
                mrs_read_frame(handle, UInt32(index), $0.baseAddress, count, buffer, size)
            }
        }
        guard status == MRS_OK else { throw DICOMError(status: status, path: path, message: message) }
        let slope = Float(header.rescaleSlope), intercept = Float(header.rescaleIntercept)
        if slope != 1 || intercept != 0 {
            for i in values.indices { values[i] = values[i] * slope + intercept }
        }
        let photometric = withUnsafeBytes(of: layout.photometric_interpretation) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return PixelFrame(rows: Int(layout.rows), columns: Int(layout.columns), samplesPerPixel: samples,
                          photometricInterpretation: photometric, values: values)
    }
}
