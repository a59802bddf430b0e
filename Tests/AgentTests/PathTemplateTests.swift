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

    @Test("StudyKey and SeriesKey name a UID stably: FNV-1a's published value, different UIDs apart")
    func keys() throws {
        // FNV-1a 64 of "a" is af63dc4c8601ec8c (the algorithm's reference vectors).
        #expect(PathTemplate.key("a") == "af63dc4c86")
        #expect(PathTemplate.key("") == "cbf29ce484")
        var one = try values(patientID: "P1")
        one.header.studyInstanceUID = "1.2.840.1"
        var two = one
        two.header.studyInstanceUID = "1.2.840.2"
        let layout = try PathTemplate(PathTemplate.defaultLayout)
        #expect(layout.relativePath(one) != layout.relativePath(two))
        #expect(layout.relativePath(one).hasPrefix("P1/\(one.header.studyDate ?? "unknown")_"))
        #expect(layout.relativePath(one).split(separator: "/")[1].hasSuffix("_" + PathTemplate.key("1.2.840.1")))
    }

    @Test("Unknown placeholders and unbalanced braces are errors")
    func errors() {
        #expect(throws: TemplateError.self) { try PathTemplate("{Nope}") }
        #expect(throws: TemplateError.self) { try PathTemplate("{sequence") }
        #expect(throws: TemplateError.self) { try PathTemplate("sequence}") }
    }
}
