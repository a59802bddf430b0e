import Foundation
import Testing
@testable import Agent

@Suite("One agent per state directory and drop folder")
struct InstanceLockTests {
    @Test("A second lock on the state directory or on a watched folder is refused; a reload moves the folder locks; release frees all")
    func exclusive() throws {
        let root = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["state", "state2", "state3", "in", "in2"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        let first = try InstanceLock(stateDirectory: root + "/state", folders: [root + "/in"])
        #expect(first.unlockable.isEmpty)
        #expect(throws: FileSystemError.self) { try InstanceLock(stateDirectory: root + "/state", folders: [root + "/in2"]) }
        do {
            _ = try InstanceLock(stateDirectory: root + "/state2", folders: [root + "/in2", root + "/in"])
            Issue.record("a second agent took a watched folder")
        } catch {
            #expect(error.description == "\(root)/in: lock watched folder failed: another mrsort agent is watching it; a second instance is refused")
        }
        // The refused attempt held nothing: in2 and state2 are free.
        try first.watch([root + "/in2"])
        let second = try InstanceLock(stateDirectory: root + "/state2", folders: [root + "/in"])
        #expect(throws: FileSystemError.self) { try second.watch([root + "/in", root + "/in2"]) }
        // A refused reload keeps what the lock held.
        #expect(throws: FileSystemError.self) { try InstanceLock(stateDirectory: root + "/state3", folders: [root + "/in"]) }
        first.release()
        second.release()
        _ = try InstanceLock(stateDirectory: root + "/state", folders: [root + "/in", root + "/in2"])
    }
}
