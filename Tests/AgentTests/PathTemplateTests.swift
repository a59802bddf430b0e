import DICOM
import Foundation
import Testing
@testable import Agent
@testable import Classification

@Suite("Layout and description templates")
struct PathTemplateTests {
    func values(patientID: String?, seriesNumber: Int? = 7) throws -> TemplateValues {
        let file = try #require(try Paths.realSeries("dcm_qa_decubitus__S2_t1_fl2d_sag").first)
        var header = try #require(try ImageHeader.read(from: file).first)
        header.patientID = patientID
        header.seriesNumber = seriesNumber
        header.sopInstanceUID = "1.2.3"
        return TemplateValues(header: header, sequence: .t1Pre, orientation: .sagittal, confidence: 0.875)
    }

    @Test("Attributes and results fill the layout")
    func fills() throws {
        let template = try PathTemplate("{PatientID}/{SeriesNumber}_{sequence}_{orientation}/{SOPInstanceUID}.dcm")
        #expect(template.relativePath(try values(patientID: "P1")) == "P1/7_t1_pre_sagittal/1.2.3.dcm")
        #expect(try PathTemplate("{sequence} {orientation} {confidence}").text(try values(patientID: "P1")) == "t1_pre sagittal 0.88")
    }

    @Test("Hostile or missing values never leave the output folder")
    func sanitises() throws {
        let template = try PathTemplate("{PatientID}/{SeriesNumber}/{SOPInstanceUID}.dcm")
        #expect(template.relativePath(try values(patientID: "../../etc")) == "_._.._etc/7/1.2.3.dcm")
        #expect(template.relativePath(try values(patientID: "..")) == "_./7/1.2.3.dcm")
        #expect(template.relativePath(try values(patientID: "a\u{0}b\nc/d")) == "a_b_c_d/7/1.2.3.dcm")
        #expect(template.relativePath(try values(patientID: nil, seriesNumber: nil)) == "unknown/unknown/1.2.3.dcm")
        #expect(template.relativePath(try values(patientID: "   ")) == "unknown/7/1.2.3.dcm")
    }

    @Test("Unknown placeholders and unbalanced braces are errors")
    func errors() {
        #expect(throws: TemplateError.self) { try PathTemplate("{Nope}") }
        #expect(throws: TemplateError.self) { try PathTemplate("{sequence") }
        #expect(throws: TemplateError.self) { try PathTemplate("sequence}") }
    }
}
