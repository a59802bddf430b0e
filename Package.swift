// swift-tools-version:6.0
// mrsort: classify brain MRI DICOM series and route them.
//
// Layers, bottom to top (lower layers never import higher ones):
//   CDCMTK, CYAML, COpenBLAS  C shims and system modules
//   DICOM                     reading, pixels and atomic rewriting of DICOM files
//   Classification            taxonomy, metadata features, random forest, CNN, vote
//   Agent                     config, watcher, series tracker, journal, actions
//   mrsort                    the command
import PackageDescription

let package = Package(
    name: "mrsort",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mrsort", targets: ["mrsort"]),
        .library(name: "DICOM", targets: ["DICOM"]),
        .library(name: "Classification", targets: ["Classification"]),
        .library(name: "Agent", targets: ["Agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // DCMTK behind a plain C header. Debian's dcmtk.pc requires libsndfile and
        // breaks pkg-config, so the libraries are named explicitly.
        .target(
            name: "CDCMTK",
            linkerSettings: [
                .linkedLibrary("dcmnet"),
                .linkedLibrary("dcmjpls"),
                .linkedLibrary("dcmjpeg"),
                .linkedLibrary("dcmdata"),
                .linkedLibrary("oflog"),
                .linkedLibrary("ofstd"),
                .linkedLibrary("stdc++"),
            ]
        ),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "DICOM", dependencies: ["CDCMTK"]),
        .target(name: "Classification", dependencies: ["DICOM", "COpenBLAS"]),
        .target(
            name: "Agent",
            dependencies: ["DICOM", "Classification", "CYAML", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "mrsort",
            dependencies: [
                "DICOM",
                "Classification",
                "Agent",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "mrsort-benchmark", dependencies: ["DICOM", "Classification"], path: "benchmarks/mrsort-benchmark"),
        .testTarget(name: "DICOMTests", dependencies: ["DICOM"]),
        // The parity fixtures are read from the checkout by path, not bundled as resources.
        .testTarget(name: "ClassificationTests", dependencies: ["Classification", "DICOM"], exclude: ["Fixtures"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "Classification", "DICOM"]),
    ],
    cxxLanguageStandard: .cxx17
)
