// The structural pre-scan: see structure_scan.h for why it exists.
//
// The walk follows DCMTK's reading rules closely enough that DCMTK never nests deeper than the
// walk says: wherever the two might differ, the walk assumes more nesting, not less (a defined-length
// value that starts with an item tag is walked as a sequence, an undefined length is always a
// sequence, a delimiter that does not close what is open is ignored). Over-counting can only refuse
// files nested near the limit, which real files never are.

#include "structure_scan.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace mrs {
namespace {

constexpr uint32_t undefinedLength = 0xFFFFFFFFu;
constexpr uint64_t unknownEnd = UINT64_MAX;
/** Bytes read at a time: one read covers the header of most files. */
constexpr size_t windowSize = 64 * 1024;

/** Bytes of a file or of an inflated stream, read forward through a window. */
class ByteSource {
public:
    virtual ~ByteSource() = default;
    /**
     * Copies up to `count` bytes at `offset` into `out`; fewer only where the data ends.
     * Offsets never go back before the last one asked for.
     */
    virtual size_t read(uint64_t offset, uint8_t *out, size_t count) = 0;
    /** Where the data ends, or unknownEnd for a stream. */
    virtual uint64_t end() const = 0;
};

/** A plain file, read with pread into a window. */
class FileSource final : public ByteSource {
public:
    FileSource(const char *path, uint64_t size) : fd_(::open(path, O_RDONLY | O_CLOEXEC)), size_(size), window_(windowSize) {}
    ~FileSource() override {
        if (fd_ >= 0) ::close(fd_);
    }
    FileSource(const FileSource &) = delete;
    FileSource &operator=(const FileSource &) = delete;

    bool isOpen() const { return fd_ >= 0; }
    uint64_t end() const override { return size_; }

    size_t read(uint64_t offset, uint8_t *out, size_t count) override {
        if (offset < start_ || offset + count > start_ + length_) {
            if (offset >= size_) return 0;
            start_ = offset;
            length_ = 0;
            const size_t wanted = size_t(std::min<uint64_t>(window_.size(), size_ - offset));
            while (length_ < wanted) {
                const ssize_t n = ::pread(fd_, window_.data() + length_, wanted - length_, off_t(offset + length_));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break; // an error or a file shrinking under us: the data ends here
                length_ += size_t(n);
            }
        }
        const size_t available = size_t(std::min<uint64_t>(count, start_ + length_ - offset));
        std::memcpy(out, window_.data() + (offset - start_), available);
        return available;
    }

private:
    int fd_;
    uint64_t size_;
    std::vector<uint8_t> window_;
    uint64_t start_ = 0;
    size_t length_ = 0;
};

/** A deflated dataset (1.2.840.10008.1.2.1.99), inflated by DCMTK's own filter; offsets count inflated bytes. */
class DeflatedSource final : public ByteSource {
public:
    DeflatedSource(const char *path, uint64_t datasetOffset)
        : stream_(OFFilename(path), offile_off_t(datasetOffset)), window_(windowSize) {
        ok_ = stream_.good() && stream_.installCompressionFilter(ESC_zlib).good();
    }

    bool isOpen() const { return ok_; }
    uint64_t end() const override { return unknownEnd; }

    size_t read(uint64_t offset, uint8_t *out, size_t count) override {
        if (!ok_ || offset < start_) return 0;
        if (offset + count > start_ + length_) {
            const uint64_t streamPosition = start_ + length_;
            if (offset >= streamPosition) {
                const uint64_t gap = offset - streamPosition;
                if (gap > 0 && uint64_t(stream_.skip(offile_off_t(gap))) < gap) {
                    ok_ = false;
                    return 0;
                }
                length_ = 0;
            } else {
                // Keep the bytes already inflated from `offset` on.
                const size_t keep = size_t(streamPosition - offset);
                std::memmove(window_.data(), window_.data() + (offset - start_), keep);
                length_ = keep;
            }
            start_ = offset;
            while (length_ < window_.size()) {
                const offile_off_t n = stream_.read(window_.data() + length_, offile_off_t(window_.size() - length_));
                if (n <= 0) break;
                length_ += size_t(n);
            }
        }
        const size_t available = size_t(std::min<uint64_t>(count, start_ + length_ - offset));
        std::memcpy(out, window_.data() + (offset - start_), available);
        return available;
    }

private:
    DcmInputFileStream stream_;
    std::vector<uint8_t> window_;
    uint64_t start_ = 0;
    size_t length_ = 0;
    bool ok_ = false;
};

enum class Encoding : uint8_t { explicitLittle, implicitLittle, explicitBig };

/** A sequence or item the walk is inside. */
struct Container {
    enum class Kind : uint8_t { sequence, item, pixelSequence };
    Kind kind;
    bool undefinedLength;
    /** Encoding of what the container holds (UN sequences hold implicit little endian). */
    Encoding encoding;
    /** Sequence nesting of what the container holds. */
    unsigned level;
    /** Where the container ends: its own end for a defined length, else its parent's. */
    uint64_t limit;
    uint16_t group, element;
};

std::string tagText(uint16_t group, uint16_t element) {
    char text[16];
    std::snprintf(text, sizeof text, "(%04X,%04X)", group, element);
    return text;
}

bool isPixelDataTag(uint16_t group, uint16_t element) {
    return group == 0x7FE0 && (element == 0x0010 || element == 0x0008 || element == 0x0009);
}

std::string elementName(uint16_t group, uint16_t element) {
    if (isPixelDataTag(group, element)) return "the pixel data " + tagText(group, element);
    return tagText(group, element);
}

bool isUpper(uint8_t c) { return c >= 'A' && c <= 'Z'; }

/** How DCMTK sizes the length field of an explicit VR (see DcmVR in dcvr.cc). */
enum class VRClass : uint8_t { shortLength, longLength, unknownLong, unknownShort };

constexpr uint16_t vrCode(char a, char b) { return uint16_t(uint8_t(a) << 8 | uint8_t(b)); }

/**
 * The standard VRs with 4-byte lengths (after 2 reserved bytes) and DCMTK's internal "ox" and
 * "lt"; the standard short ones and DCMTK's internal "xs", "na", "up" and "pi"; an unknown VR of
 * two capital letters has a 4-byte length (DICOM gives every new VR one) and is read as UN; any
 * other unknown VR ("??", stray bytes) has a 2-byte length. A switch: this runs for every element.
 */
VRClass classifyVR(uint8_t a, uint8_t b) {
    switch (uint16_t(a << 8 | b)) {
    case vrCode('O', 'B'): case vrCode('O', 'D'): case vrCode('O', 'F'): case vrCode('O', 'L'):
    case vrCode('O', 'V'): case vrCode('O', 'W'): case vrCode('S', 'Q'): case vrCode('S', 'V'):
    case vrCode('U', 'C'): case vrCode('U', 'R'): case vrCode('U', 'T'): case vrCode('U', 'V'):
    case vrCode('o', 'x'): case vrCode('l', 't'):
        return VRClass::longLength;
    case vrCode('U', 'N'):
        return VRClass::unknownLong;
    case vrCode('A', 'E'): case vrCode('A', 'S'): case vrCode('A', 'T'): case vrCode('C', 'S'):
    case vrCode('D', 'A'): case vrCode('D', 'S'): case vrCode('D', 'T'): case vrCode('F', 'L'):
    case vrCode('F', 'D'): case vrCode('I', 'S'): case vrCode('L', 'O'): case vrCode('L', 'T'):
    case vrCode('P', 'N'): case vrCode('S', 'H'): case vrCode('S', 'L'): case vrCode('S', 'S'):
    case vrCode('S', 'T'): case vrCode('T', 'M'): case vrCode('U', 'I'): case vrCode('U', 'L'):
    case vrCode('U', 'S'): case vrCode('x', 's'): case vrCode('n', 'a'): case vrCode('u', 'p'):
    case vrCode('p', 'i'):
        return VRClass::shortLength;
    default:
        return isUpper(a) && isUpper(b) ? VRClass::unknownLong : VRClass::unknownShort;
    }
}

class Walker {
public:
    Walker(ByteSource &source, const StructureScanOptions &options, uint64_t stepBudget)
        : source_(source), options_(options), stepsLeft_(stepBudget) {}

    StructureScan scan;
    /** The transfer syntax UID found in the meta header, if the walk went through one. */
    std::string transferSyntax;

    enum class Mode { meta, dataset };

    /**
     * Walks elements from `position` on. In meta mode, stops at the first top-level element outside
     * group 0002 and leaves `position` there. Returns false when the walk must end (a verdict, the
     * end of the data, or data it cannot follow).
     */
    bool walk(uint64_t &position, Encoding topEncoding, Mode mode) {
        uint8_t header[12];
        for (;;) {
            while (!stack_.empty() && position >= stack_.back().limit) stack_.pop_back();
            if (stepsLeft_-- == 0) {
                scan.verdict = StructureScan::Verdict::tooLarge;
                scan.reason = "the dataset holds more elements than the size of its file allows";
                return false;
            }
            const Encoding encoding = stack_.empty() ? topEncoding : stack_.back().encoding;
            // Where the innermost container ends; the end of the data is checked apart, since a
            // container that runs to the end of the data without its delimiter is cut, not closed.
            const uint64_t limit = stack_.empty() ? unknownEnd : stack_.back().limit;
            const size_t got = source_.read(position, header, 8);
            if (got < 8) {
                // The data ends. Inside an open sequence or item the file is cut; at the top level a
                // clean end, or a few stray bytes that DCMTK judges itself.
                if (!stack_.empty() && mode == Mode::dataset) scan.endsInside = describe(stack_.front());
                return false;
            }
            if (position + 8 > limit) { // a header across the end of its container
                position = limit;
                continue;
            }
            const bool big = encoding == Encoding::explicitBig;
            const uint16_t group = u16(header, big), element = u16(header + 2, big);
            if (mode == Mode::meta && stack_.empty() && group != 0x0002) return true;
            if (mode == Mode::dataset && stack_.empty() && options_.stopAtPixelData && group == 0x7FE0 && element == 0x0010)
                return false;

            if (group == 0xFFFE && (element == 0xE000 || element == 0xE00D || element == 0xE0DD)) {
                const uint32_t length = u32(header + 4, big);
                position += 8;
                if (element == 0xE000) {
                    if (!enterItem(position, length, limit, encoding)) return false;
                } else if (!stack_.empty() && stack_.back().undefinedLength) {
                    const Container::Kind kind = stack_.back().kind;
                    const bool closesItem = element == 0xE00D && kind == Container::Kind::item;
                    const bool closesSequence = element == 0xE0DD && kind != Container::Kind::item;
                    if (closesItem || closesSequence) stack_.pop_back();
                }
                continue;
            }

            uint32_t length;
            size_t headerLength = 8;
            uint8_t vr0 = 0, vr1 = 0;
            VRClass vrClass = VRClass::unknownShort;
            if (encoding == Encoding::implicitLittle) {
                length = u32(header + 4, false);
            } else {
                vr0 = header[4];
                vr1 = header[5];
                vrClass = classifyVR(vr0, vr1);
                if (vrClass == VRClass::longLength || vrClass == VRClass::unknownLong) {
                    if (source_.read(position + 8, header + 8, 4) < 4) {
                        if (mode == Mode::dataset) scan.endsInside = stack_.empty() ? elementName(group, element) : describe(stack_.front());
                        return false;
                    }
                    length = u32(header + 8, big);
                    headerLength = 12;
                } else {
                    length = u16(header + 6, big);
                }
            }
            const uint64_t valueStart = position + headerLength;
            const bool explicitVR = encoding != Encoding::implicitLittle;
            const bool unknownVR = explicitVR && vrClass == VRClass::unknownLong;
            // UN values (and unknown VRs) hold implicit little endian when they hold a sequence.
            const Encoding contentEncoding = unknownVR ? Encoding::implicitLittle : encoding;

            if (length == undefinedLength) {
                const Container::Kind kind = (group == 0x7FE0 && element == 0x0010) ? Container::Kind::pixelSequence
                                                                                    : Container::Kind::sequence;
                if (!enterSequence(kind, true, contentEncoding, limit, valueStart, group, element)) return false;
                position = valueStart;
                continue;
            }
            bool isSequence = explicitVR && vr0 == 'S' && vr1 == 'Q';
            // Without a dictionary, a defined-length value that begins with an item tag is walked as
            // a sequence: DCMTK reads one so when its dictionary (implicit VR) or its UN conversion says SQ.
            if (!isSequence && (!explicitVR || unknownVR) && !isPixelDataTag(group, element) && length >= 8)
                isSequence = startsWithItem(valueStart, contentEncoding == Encoding::explicitBig);
            if (isSequence) {
                if (!enterSequence(Container::Kind::sequence, false, contentEncoding, std::min(limit, valueStart + length),
                                   valueStart, group, element))
                    return false;
                position = valueStart;
                continue;
            }
            const uint64_t valueEnd = valueStart + length;
            if (valueEnd > limit && limit <= source_.end()) {
                position = limit; // past the end of its container: DCMTK stops there too
                continue;
            }
            if (valueEnd > source_.end()) { // the value runs past the end of the file
                if (mode == Mode::dataset) scan.endsInside = stack_.empty() ? elementName(group, element) : describe(stack_.front());
                return false;
            }
            if (mode == Mode::meta && stack_.empty() && group == 0x0002 && element == 0x0010 && length <= 64) {
                uint8_t uid[64];
                const size_t n = source_.read(valueStart, uid, length);
                transferSyntax.assign(reinterpret_cast<const char *>(uid), n);
                while (!transferSyntax.empty() && (transferSyntax.back() == '\0' || transferSyntax.back() == ' '))
                    transferSyntax.pop_back();
            }
            position = valueEnd;
        }
    }

private:
    static uint16_t u16(const uint8_t *p, bool big) { return big ? uint16_t(p[0] << 8 | p[1]) : uint16_t(p[1] << 8 | p[0]); }
    static uint32_t u32(const uint8_t *p, bool big) {
        return big ? uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]
                   : uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0];
    }

    bool startsWithItem(uint64_t offset, bool big) {
        uint8_t tag[4];
        return source_.read(offset, tag, 4) == 4 && u16(tag, big) == 0xFFFE && u16(tag + 2, big) == 0xE000;
    }

    unsigned currentLevel() const { return stack_.empty() ? 0 : stack_.back().level; }

    bool checkDepth(unsigned level, uint64_t offset) {
        if (level <= options_.depthLimit) return true;
        scan.verdict = StructureScan::Verdict::tooDeep;
        char text[160];
        std::snprintf(text, sizeof text, "sequences nested %u deep at byte %llu (limit %u)", level,
                      (unsigned long long)offset, options_.depthLimit);
        scan.reason = text;
        return false;
    }

    bool enterSequence(Container::Kind kind, bool undefined, Encoding encoding, uint64_t limit, uint64_t offset,
                       uint16_t group, uint16_t element) {
        const unsigned level = currentLevel() + 1;
        if (!checkDepth(level, offset)) return false;
        stack_.push_back(Container{kind, undefined, encoding, level, limit, group, element});
        return true;
    }

    /** An item: a fragment (skipped) inside pixel data, else a dataset the walk goes into. */
    bool enterItem(uint64_t &position, uint32_t length, uint64_t limit, Encoding encoding) {
        const Container *parent = stack_.empty() ? nullptr : &stack_.back();
        if (parent != nullptr && parent->kind == Container::Kind::pixelSequence && length != undefinedLength) {
            if (position + length > limit && limit <= source_.end()) {
                position = limit;
                return true;
            }
            if (position + length > source_.end()) {
                scan.endsInside = describe(stack_.front());
                return false;
            }
            position += length;
            return true;
        }
        // An item outside a sequence is not valid DICOM; count it as a level of its own.
        const bool inSequence = parent != nullptr && parent->kind != Container::Kind::item;
        const unsigned level = inSequence ? parent->level : currentLevel() + 1;
        if (!checkDepth(level, position)) return false;
        const uint64_t itemLimit = length == undefinedLength ? limit : std::min(limit, position + length);
        stack_.push_back(Container{Container::Kind::item, length == undefinedLength, encoding, level, itemLimit, 0xFFFE, 0xE000});
        return true;
    }

    static std::string describe(const Container &outermost) {
        switch (outermost.kind) {
        case Container::Kind::pixelSequence: return "the pixel data " + tagText(outermost.group, outermost.element);
        case Container::Kind::sequence: return "the sequence " + tagText(outermost.group, outermost.element);
        case Container::Kind::item: return "an item";
        }
        return "a sequence";
    }

    ByteSource &source_;
    const StructureScanOptions &options_;
    uint64_t stepsLeft_;
    /** At most a sequence and an item per level: deeper nesting than the limit ends the walk. */
    std::vector<Container> stack_;
};

/** The encoding of a dataset without a transfer syntax, guessed from its first element as DCMTK does. */
Encoding guessEncoding(ByteSource &source, uint64_t offset) {
    uint8_t bytes[6];
    if (source.read(offset, bytes, 6) < 6) return Encoding::explicitLittle;
    const uint16_t little = uint16_t(bytes[1] << 8 | bytes[0]), big = uint16_t(bytes[0] << 8 | bytes[1]);
    const bool isExplicit = isUpper(bytes[4]) && isUpper(bytes[5]);
    if (big < little) return isExplicit ? Encoding::explicitBig : Encoding::implicitLittle;
    return isExplicit ? Encoding::explicitLittle : Encoding::implicitLittle;
}

} // namespace

StructureScan scanStructure(const char *path, uint64_t size, const StructureScanOptions &options) {
    FileSource file(path, size);
    if (!file.isOpen()) return StructureScan{}; // DCMTK will say why it cannot read the file
    // Every step of the walk moves at least one byte forward, so the file's size bounds the walk.
    Walker walker(file, options, size + 64);
    uint64_t position = 0;
    Encoding encoding = Encoding::explicitLittle;
    bool deflated = false;
    if (options.part10) {
        position = 132;
        uint8_t first[6];
        if (file.read(position, first, 6) == 6 && first[0] == 0x02 && first[1] == 0x00) {
            // The meta header is explicit little endian; a few old writers used implicit.
            const Encoding metaEncoding = isUpper(first[4]) && isUpper(first[5]) ? Encoding::explicitLittle
                                                                                 : Encoding::implicitLittle;
            if (!walker.walk(position, metaEncoding, Walker::Mode::meta)) return walker.scan;
        }
    }
    if (!walker.transferSyntax.empty()) {
        DcmXfer xfer(walker.transferSyntax.c_str());
        if (xfer.getXfer() == EXS_Unknown) return walker.scan; // DCMTK refuses it by name
        deflated = xfer.getStreamCompression() == ESC_zlib;
        if (!xfer.isExplicitVR()) encoding = Encoding::implicitLittle;
        else encoding = xfer.getByteOrder() == EBO_BigEndian ? Encoding::explicitBig : Encoding::explicitLittle;
    } else {
        encoding = guessEncoding(file, position);
    }
    if (!deflated) {
        walker.walk(position, encoding, Walker::Mode::dataset);
        return walker.scan;
    }
    DeflatedSource inflated(path, position);
    if (!inflated.isOpen()) return walker.scan;
    // DCMTK inflates the whole dataset into memory; a dataset that inflates to many more elements
    // than its compressed size could plausibly hold is a decompression bomb.
    Walker inflatedWalker(inflated, options, 16 * size + 4096);
    uint64_t inflatedPosition = 0;
    inflatedWalker.walk(inflatedPosition, encoding, Walker::Mode::dataset);
    return inflatedWalker.scan;
}

} // namespace mrs
