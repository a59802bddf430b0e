// A cheap, iterative walk over the element structure of a DICOM file, run before DCMTK parses it.
//
// DCMTK's parser recurses once per sequence and item: a few thousand nested undefined-length
// sequences (a few hundred kilobytes) overflow the stack and kill the process. This walk follows
// tags, VRs and lengths only, with an explicit stack, never reads values it does not need and never
// recurses, so a file can be refused before DCMTK sees it. It is internal to the shim (not part of
// the C interface in include/).
#ifndef MRSORT_STRUCTURE_SCAN_H
#define MRSORT_STRUCTURE_SCAN_H

#include <cstdint>
#include <string>

namespace mrs {

/** What the structural walk of one file found. */
struct StructureScan {
    enum class Verdict {
        /** Nothing that stops DCMTK from parsing the file (it may still report errors of its own). */
        ok,
        /** Sequences nest deeper than the limit; `reason` says how deep and where. */
        tooDeep,
        /** The walk takes more steps than the file's size allows (a deflated dataset that inflates without end). */
        tooLarge,
    };
    Verdict verdict = Verdict::ok;
    std::string reason;
    /**
     * Non-empty when the file ends inside a sequence, an item or an element at the top level, e.g.
     * "the pixel data (7FE0,0010)": the file is cut there, even where DCMTK accepts what it got.
     */
    std::string endsInside;
};

/** How the walk should treat the file. */
struct StructureScanOptions {
    /** The file starts with a 128-byte preamble and "DICM" (else it is a bare dataset). */
    bool part10 = true;
    /** Stop at the top-level PixelData (7FE0,0010), as a header-only read does. */
    bool stopAtPixelData = false;
    /** Deepest sequence nesting accepted; real files nest less than 10 deep. */
    unsigned depthLimit = 64;
};

/**
 * Walks the file at `path` (`size` bytes). Never throws for anything in the file; I/O errors end
 * the walk with Verdict::ok, leaving DCMTK to report them. May throw std::bad_alloc.
 */
StructureScan scanStructure(const char *path, uint64_t size, const StructureScanOptions &options);

} // namespace mrs

#endif
