// The C face of DCMTK for mrsort. See include/cdcmtk.h for the contract.
//
// Policy: no C++ exception or DCMTK abort crosses this boundary; every failure
// becomes an mrs_status with a message that says what went wrong.

#include "cdcmtk.h"
#include "shim_support.h"
#include "structure_scan.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct mrs_file {
    DcmFileFormat format;
    DcmFileCache cache;
    Uint32 nextFragment = 0;
    Uint32 nextFrame = 0;
    /** NumberOfFrames as checked at open against what the file can hold (1 when absent). */
    uint64_t frames = 1;
    /** The ceiling on the decoded size of one frame, from mrs_open. */
    uint64_t maxFrameBytes = 0;
};

using namespace mrs_shim;

namespace {

std::once_flag initializeOnce;

inline DcmItem *asItem(const mrs_item *item) {
    return reinterpret_cast<DcmItem *>(const_cast<mrs_item *>(item));
}

inline mrs_item *asHandle(DcmItem *item) { return reinterpret_cast<mrs_item *>(item); }

DcmElement *findElement(const mrs_item *item, uint16_t group, uint16_t element) {
    if (item == nullptr) return nullptr;
    // Elements are kept in tag order: walk until the tag is reached or passed. Cheaper than
    // findAndGetElement, which allocates a search stack on every call.
    const DcmTagKey wanted(group, element);
    DcmItem *dcmItem = asItem(item);
    for (DcmObject *object = dcmItem->nextInContainer(nullptr); object != nullptr; object = dcmItem->nextInContainer(object)) {
        const DcmTagKey key = object->getTag();
        if (key == wanted) return object->isLeaf() ? OFstatic_cast(DcmElement *, object) : nullptr;
        if (wanted < key) break;
    }
    return nullptr;
}

bool isTextVR(DcmEVR vr) {
    switch (vr) {
    case EVR_AE: case EVR_AS: case EVR_CS: case EVR_DA: case EVR_DS: case EVR_DT:
    case EVR_IS: case EVR_LO: case EVR_LT: case EVR_PN: case EVR_SH: case EVR_ST:
    case EVR_TM: case EVR_UC: case EVR_UI: case EVR_UR: case EVR_UT:
        return true;
    default:
        return false;
    }
}

bool isUninterpretedVR(DcmEVR vr) { return vr == EVR_UN || vr == EVR_OB || vr == EVR_UNKNOWN; }

/// Raw bytes of an element, loaded into memory if needed.
bool rawBytes(DcmElement *element, const Uint8 *&bytes, unsigned long &length) {
    Uint8 *data = nullptr;
    if (element->getUint8Array(data).bad() || data == nullptr) return false;
    bytes = data;
    length = element->getLength();
    return true;
}

/// Splits backslash-separated text and returns piece `index`, trimmed of spaces and NULs.
bool textValue(const char *text, size_t length, unsigned long index, std::string &out) {
    unsigned long current = 0;
    size_t start = 0;
    for (size_t i = 0; i <= length; ++i) {
        if (i == length || text[i] == '\\') {
            if (current == index) {
                size_t a = start, b = i;
                while (a < b && (text[a] == ' ' || text[a] == '\0')) ++a;
                while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\0')) --b;
                out.assign(text + a, b - a);
                return true;
            }
            ++current;
            start = i + 1;
        }
    }
    return false;
}

unsigned long textMultiplicity(const char *text, size_t length) {
    size_t end = length;
    while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\0')) --end;
    if (end == 0) return 0;
    unsigned long count = 1;
    for (size_t i = 0; i < end; ++i)
        if (text[i] == '\\') ++count;
    return count;
}

bool parseNumber(const std::string &text, double &value) {
    if (text.empty()) return false;
    char *end = nullptr;
    errno = 0;
    double parsed = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || errno == ERANGE) return false;
    while (*end == ' ') ++end;
    if (*end != '\0') return false;
    value = parsed;
    return true;
}

std::string upperTrimmed(const char *text, size_t length) {
    size_t a = 0, b = length;
    while (a < b && (text[a] == ' ' || text[a] == '\0')) ++a;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\0')) --b;
    std::string result(text + a, b - a);
    for (char &c : result) c = char(std::toupper(static_cast<unsigned char>(c)));
    return result;
}

std::string conditionText(const OFCondition &condition) { return std::string(condition.text()); }

bool isJPEG2000(E_TransferSyntax xfer) {
    return xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000 ||
           xfer == EXS_JPEG2000MulticomponentLosslessOnly || xfer == EXS_JPEG2000Multicomponent;
}

/// What the start of a file says it is: a Part 10 file, a bare dataset, or neither.
enum class Prefix { part10, bareDataset, notDICOM, empty };

Prefix classifyPrefix(const unsigned char *bytes, size_t length) {
    if (length == 0) return Prefix::empty;
    if (length >= 132 && std::memcmp(bytes + 128, "DICM", 4) == 0) return Prefix::part10;
    // A dataset without preamble starts with a low group (0002 or 0008), in either byte order,
    // followed by an explicit VR or a plausible implicit length.
    if (length < 8) return Prefix::notDICOM;
    const uint16_t little = uint16_t(bytes[0] | (bytes[1] << 8));
    const uint16_t big = uint16_t((bytes[0] << 8) | bytes[1]);
    if (little == 0x0002 || little == 0x0008 || big == 0x0002 || big == 0x0008) return Prefix::bareDataset;
    return Prefix::notDICOM;
}

/** Value `index` of little-endian binary `T`s in the raw bytes of a UN element. */
template <typename T>
int littleEndianValue(const Uint8 *bytes, unsigned long length, unsigned long index, double *value) {
    if ((index + 1) * sizeof(T) > length) return 0;
    T v;
    std::memcpy(&v, bytes + index * sizeof(T), sizeof(T));
    if (gLocalByteOrder != EBO_LittleEndian) swapBytes(&v, sizeof(T), sizeof(T));
    *value = v;
    return 1;
}

/** What the dataset says one frame is made of: rows × columns × samples × bits allocated. */
struct FrameGeometry {
    Uint16 rows = 0, columns = 0, samples = 1, bitsAllocated = 0;

    explicit FrameGeometry(DcmItem *dataset) {
        dataset->findAndGetUint16(DCM_Rows, rows);
        dataset->findAndGetUint16(DCM_Columns, columns);
        if (dataset->findAndGetUint16(DCM_SamplesPerPixel, samples).bad() || samples == 0) samples = 1;
        dataset->findAndGetUint16(DCM_BitsAllocated, bitsAllocated);
    }

    bool isKnown() const { return rows > 0 && columns > 0 && bitsAllocated > 0; }
    /** Bits of one frame. Four 16-bit factors: the product stays below 2^64, it cannot overflow. */
    uint64_t bits() const { return uint64_t(rows) * columns * samples * bitsAllocated; }
    uint64_t bytes() const { return bits() / 8 + (bits() % 8 != 0 ? 1 : 0); }
    std::string text() const {
        return std::to_string(rows) + " x " + std::to_string(columns) + " x " + std::to_string(samples) + " x " +
               std::to_string(bitsAllocated) + " bits";
    }
};

/**
 * NumberOfFrames (0028,0008) read as the Swift layer reads numbers (the first value as a decimal):
 * 1 when absent, unparseable, not integral or below 1.
 */
uint64_t declaredFrames(DcmItem *dataset) {
    double value = 0;
    if (mrs_item_number(asHandle(dataset), 0x0028, 0x0008, 0, MRS_HINT_TEXT, &value) == 0) return 1;
    if (!std::isfinite(value) || std::floor(value) != value || value < 1 || value >= 9.0e15) return 1;
    return uint64_t(value);
}

/** The top-level element holding the pixels: PixelData, FloatPixelData or DoubleFloatPixelData. */
DcmElement *pixelElement(DcmItem *dataset) {
    for (const DcmTagKey &key : {DCM_PixelData, DCM_FloatPixelData, DCM_DoubleFloatPixelData}) {
        DcmElement *element = findElement(asHandle(dataset), key.getGroup(), key.getElement());
        if (element != nullptr) return element;
    }
    return nullptr;
}

/**
 * Whether the file describes an image and so must carry pixel data: an image storage SOP class
 * (the dataset's, else the meta header's, which survives a cut dataset), or Rows and Columns in a
 * file of no known class. MR spectroscopy has Rows and Columns but no pixel data.
 */
bool describesImage(DcmItem *dataset, DcmItem *meta, const FrameGeometry &geometry) {
    OFString sopClass;
    if (dataset->findAndGetOFString(DCM_SOPClassUID, sopClass).bad() || sopClass.empty())
        meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, sopClass);
    if (!sopClass.empty()) {
        if (dcmIsImageStorageSOPClassUID(sopClass.c_str())) return true;
        if (sopClass == UID_MRSpectroscopyStorage) return false;
    }
    return geometry.rows > 0 && geometry.columns > 0;
}

/**
 * Checks, after parsing, that the pixel data is all there and agrees with the header, and that no
 * frame decodes to more than the ceiling; records the checked frame count. Runs before anything
 * is allocated in proportion to NumberOfFrames or to Rows × Columns, so a crafted header costs
 * nothing. A header-only read has no pixel data to count: the file's size bounds the frames.
 */
mrs_status checkFrames(mrs_file *file, bool headerOnly, uint64_t fileSize, char *message, size_t size) {
    DcmDataset *dataset = file->format.getDataset();
    const FrameGeometry geometry(dataset);
    const uint64_t declared = declaredFrames(dataset);
    const E_TransferSyntax xfer = dataset->getOriginalXfer();
    const bool encapsulated = DcmXfer(xfer).isEncapsulated();
    DcmElement *pixels = headerOnly ? nullptr : pixelElement(dataset);
    auto refuse = [&](mrs_status status, const std::string &reason) {
        setMessage(message, size, reason);
        return status;
    };
    const std::string declaredText = "NumberOfFrames (0028,0008) " + std::to_string(declared);

    if (pixels == nullptr) {
        if (!headerOnly && describesImage(dataset, file->format.getMetaInfo(), geometry))
            return refuse(MRS_TRUNCATED, "the file ends before its pixel data (7FE0,0010)");
        // An encapsulated frame takes at least an 8-byte item header; a native one its own size.
        const uint64_t perFrame = encapsulated ? 8 : (geometry.isKnown() ? std::max<uint64_t>(1, geometry.bytes()) : 1);
        if (declared > fileSize / perFrame)
            return refuse(MRS_BAD_PIXEL_DATA, declaredText + " is more than a file of " + std::to_string(fileSize) +
                                                  " bytes can hold (at least " + std::to_string(perFrame) + " bytes a frame)");
        file->frames = declared;
        return MRS_OK;
    }

    if (geometry.isKnown() && geometry.bytes() > file->maxFrameBytes)
        return refuse(MRS_BAD_PIXEL_DATA, "a frame of " + geometry.text() + " decodes to " + std::to_string(geometry.bytes()) +
                                              " bytes, more than the limit of " + std::to_string(file->maxFrameBytes));

    const DcmTagKey key = pixels->getTag();
    if (key == DCM_PixelData && encapsulated) {
        DcmPixelSequence *sequence = nullptr;
        if (OFstatic_cast(DcmPixelData *, pixels)->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() ||
            sequence == nullptr)
            return refuse(MRS_BAD_PIXEL_DATA, std::string("PixelData (7FE0,0010) is not encapsulated as its transfer syntax ") +
                                                  DcmXfer(xfer).getXferID() + " requires");
        // Item 0 is the basic offset table; every frame takes at least one fragment after it.
        const unsigned long items = sequence->card();
        const uint64_t fragments = items > 0 ? items - 1 : 0;
        if (fragments == 0) return refuse(MRS_BAD_PIXEL_DATA, "the encapsulated pixel data (7FE0,0010) holds no fragment");
        if (declared > fragments)
            return refuse(MRS_BAD_PIXEL_DATA, declaredText + " is more than the encapsulated pixel data (7FE0,0010) holds: " +
                                                  std::to_string(fragments) + (fragments == 1 ? " fragment" : " fragments"));
    } else {
        char tag[16];
        std::snprintf(tag, sizeof tag, "(%04X,%04X)", key.getGroup(), key.getElement());
        const std::string name = std::string(DcmTag(key).getTagName()) + " " + tag;
        const Uint32 length = pixels->getLength();
        if (length == DCM_UndefinedLength)
            return refuse(MRS_BAD_PIXEL_DATA, "native " + name + " has an undefined length");
        if (geometry.isKnown()) {
            // Bits, so that 1-bit frames packed across frame boundaries count right.
            const uint64_t room = uint64_t(length) * 8 / geometry.bits();
            if (declared > room)
                return refuse(MRS_BAD_PIXEL_DATA, declaredText + " is more than " + name + " holds: " + std::to_string(length) +
                                                      " bytes, room for " + std::to_string(room) + (room == 1 ? " frame" : " frames") +
                                                      " of " + geometry.text());
        } else if (declared > length) {
            return refuse(MRS_BAD_PIXEL_DATA, declaredText + " is more than " + name + " holds: " + std::to_string(length) + " bytes");
        }
    }
    file->frames = declared;
    return MRS_OK;
}

/** The largest frame ceiling the shim accepts: DCMTK sizes frames in 32 bits. */
constexpr uint64_t largestFrameCeiling = 0xFFFFFFF0u;

} // namespace

extern "C" {

void mrs_initialize(void) {
    try {
        std::call_once(initializeOnce, [] {
            OFLog::configure(OFLogger::OFF_LOG_LEVEL);
            DcmRLEDecoderRegistration::registerCodecs();
            DJDecoderRegistration::registerCodecs();
            DJLSDecoderRegistration::registerCodecs();
        });
    } catch (...) {
        // Only std::system_error (no threads) or bad_alloc: decoding then fails with a message of its own.
    }
}

mrs_status mrs_open(const char *path, int header_only, uint64_t max_frame_bytes, mrs_file **out, char *message,
                    size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (path == nullptr || out == nullptr) {
            setMessage(message, message_size, "no path given");
            return MRS_INVALID_ARGUMENT;
        }
        *out = nullptr;
        mrs_initialize();

        struct stat info;
        if (::stat(path, &info) != 0) {
            setMessage(message, message_size, std::strerror(errno));
            return MRS_UNREADABLE;
        }
        if (S_ISDIR(info.st_mode)) {
            setMessage(message, message_size, "is a directory");
            return MRS_IS_DIRECTORY;
        }
        if (!S_ISREG(info.st_mode)) {
            setMessage(message, message_size, "not a regular file");
            return MRS_UNREADABLE;
        }
        const uint64_t fileSize = uint64_t(info.st_size);

        unsigned char prefix[132];
        size_t prefixLength = 0;
        {
            int fd = ::open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                setMessage(message, message_size, std::strerror(errno));
                return MRS_UNREADABLE;
            }
            while (prefixLength < sizeof prefix) {
                ssize_t n = ::read(fd, prefix + prefixLength, sizeof prefix - prefixLength);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    int saved = errno;
                    ::close(fd);
                    setMessage(message, message_size, std::strerror(saved));
                    return MRS_UNREADABLE;
                }
                if (n == 0) break;
                prefixLength += size_t(n);
            }
            ::close(fd);
        }

        E_FileReadMode mode = ERM_fileOnly;
        switch (classifyPrefix(prefix, prefixLength)) {
        case Prefix::empty:
            setMessage(message, message_size, "empty file");
            return MRS_NOT_DICOM;
        case Prefix::notDICOM:
            setMessage(message, message_size, "no 'DICM' marker at byte 128 and no DICOM dataset at the start");
            return MRS_NOT_DICOM;
        case Prefix::bareDataset:
            mode = ERM_dataset;
            break;
        case Prefix::part10:
            mode = ERM_fileOnly;
            break;
        }

        // DCMTK's parser recurses per sequence level and overflows the stack on deep nesting: walk
        // the structure first, without recursion, and refuse what DCMTK cannot survive.
        mrs::StructureScanOptions scanOptions;
        scanOptions.part10 = mode == ERM_fileOnly;
        scanOptions.stopAtPixelData = header_only != 0;
        const mrs::StructureScan scan = mrs::scanStructure(path, fileSize, scanOptions);
        if (scan.verdict != mrs::StructureScan::Verdict::ok) {
            setMessage(message, message_size, scan.reason);
            return MRS_MALFORMED;
        }

        std::unique_ptr<mrs_file> file(new mrs_file());
        file->maxFrameBytes = std::min<uint64_t>(max_frame_bytes, largestFrameCeiling);
        OFCondition status;
        if (header_only) {
            status = file->format.loadFileUntilTag(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, mode, DCM_PixelData);
        } else {
            status = file->format.loadFile(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, mode);
        }

        // An unknown transfer syntax in the meta header makes the dataset unparseable; name it.
        OFString xferUID;
        if (file->format.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, xferUID).good()) {
            DcmXfer xfer(xferUID.c_str());
            if (xfer.getXfer() == EXS_Unknown) {
                setMessage(message, message_size, std::string("unknown transfer syntax ") + xferUID.c_str());
                return MRS_UNSUPPORTED_TRANSFER_SYNTAX;
            }
        }
        // Where the walk saw the bytes run out inside an element, sequence or item, the file is cut
        // (perhaps still being written), whatever DCMTK made of the bytes it got.
        if (!scan.endsInside.empty()) {
            std::string reason = "the file ends inside " + scan.endsInside;
            if (status.bad()) reason += "; DCMTK: " + conditionText(status);
            setMessage(message, message_size, reason);
            return MRS_TRUNCATED;
        }
        if (status.bad()) {
            mrs_status result = MRS_MALFORMED;
            if (status == EC_StreamNotifyClient || status == EC_EndOfStream || status == EC_PrematureSequDelimitationItem ||
                status == EC_SequEnd || status == EC_ItemEnd)
                result = MRS_TRUNCATED;
            if (status == EC_InvalidStream) result = MRS_TRUNCATED;
            setMessage(message, message_size, conditionText(status));
            return result;
        }
        DcmDataset *dataset = file->format.getDataset();
        if (dataset == nullptr || dataset->card() == 0) {
            setMessage(message, message_size, "the file holds no dataset");
            return MRS_NOT_DICOM;
        }
        const mrs_status frames = checkFrames(file.get(), header_only != 0, fileSize, message, message_size);
        if (frames != MRS_OK) return frames;
        *out = file.release();
        return MRS_OK;
    });
}

uint64_t mrs_frame_count(const mrs_file *file) { return file ? file->frames : 0; }

void mrs_close(mrs_file *file) { delete file; }

mrs_item *mrs_dataset(mrs_file *file) { return file ? asHandle(file->format.getDataset()) : nullptr; }

mrs_item *mrs_meta(mrs_file *file) { return file ? asHandle(file->format.getMetaInfo()) : nullptr; }

size_t mrs_transfer_syntax(mrs_file *file, char *buffer, size_t size) {
    return guardedValue<size_t>(0, [&]() -> size_t {
        if (file == nullptr) return 0;
        DcmXfer xfer(file->format.getDataset()->getOriginalXfer());
        const char *uid = xfer.getXferID();
        if (uid == nullptr) uid = "";
        if (buffer && size) std::snprintf(buffer, size, "%s", uid);
        return std::strlen(uid);
    });
}

int mrs_item_contains(const mrs_item *item, uint16_t group, uint16_t element) {
    return guardedValue<int>(0, [&]() -> int {
        return item != nullptr && asItem(item)->tagExists(DcmTagKey(group, element), OFFalse) ? 1 : 0;
    });
}

long mrs_item_string(const mrs_item *item, uint16_t group, uint16_t element, char *buffer, size_t size) {
    return guardedValue<long>(-1, [&]() -> long {
        DcmElement *found = findElement(item, group, element);
        if (found == nullptr) return -1;
        const DcmEVR vr = found->ident();
        std::string value;
        if (isTextVR(vr)) {
            char *text = nullptr;
            if (found->getString(text).bad() || text == nullptr) {
                value.clear();
            } else {
                value.assign(text, found->getLength());
            }
        } else if (isUninterpretedVR(vr)) {
            const Uint8 *bytes = nullptr;
            unsigned long length = 0;
            if (!rawBytes(found, bytes, length)) {
                value.clear();
            } else {
                value.assign(reinterpret_cast<const char *>(bytes), length);
            }
        } else {
            return -1;
        }
        // Trailing padding is not part of the value.
        while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.pop_back();
        if (buffer != nullptr && size > 0) {
            size_t n = value.size() < size - 1 ? value.size() : size - 1;
            std::memcpy(buffer, value.data(), n);
            buffer[n] = '\0';
        }
        return long(value.size());
    });
}

unsigned long mrs_item_multiplicity(const mrs_item *item, uint16_t group, uint16_t element, mrs_binary_hint hint) {
    return guardedValue<unsigned long>(0, [&]() -> unsigned long {
        DcmElement *found = findElement(item, group, element);
        if (found == nullptr || found->getLength() == 0) return 0;
        if (isUninterpretedVR(found->ident())) {
            const Uint8 *bytes = nullptr;
            unsigned long length = 0;
            if (!rawBytes(found, bytes, length)) return 0;
            switch (hint) {
            case MRS_HINT_FLOAT32: return length / 4;
            case MRS_HINT_FLOAT64: return length / 8;
            case MRS_HINT_INT16: return length / 2;
            case MRS_HINT_TEXT: return textMultiplicity(reinterpret_cast<const char *>(bytes), length);
            }
            return 0;
        }
        return found->getVM();
    });
}

int mrs_item_number(const mrs_item *item, uint16_t group, uint16_t element, unsigned long index, mrs_binary_hint hint,
                    double *value) {
    return guardedValue<int>(0, [&]() -> int {
        DcmElement *found = findElement(item, group, element);
        if (found == nullptr || value == nullptr || found->getLength() == 0) return 0;
        const DcmEVR vr = found->ident();
        switch (vr) {
        case EVR_FL: case EVR_OF: {
            Float32 v;
            if (found->getFloat32(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        case EVR_FD: case EVR_OD: {
            Float64 v;
            if (found->getFloat64(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        case EVR_US: {
            Uint16 v;
            if (found->getUint16(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        case EVR_SS: {
            Sint16 v;
            if (found->getSint16(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        case EVR_UL: {
            Uint32 v;
            if (found->getUint32(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        case EVR_SL: {
            Sint32 v;
            if (found->getSint32(v, index).bad()) return 0;
            *value = v;
            return 1;
        }
        default:
            break;
        }
        if (isTextVR(vr)) {
            char *text = nullptr;
            if (found->getString(text).bad() || text == nullptr) return 0;
            std::string piece;
            if (!textValue(text, found->getLength(), index, piece)) return 0;
            return parseNumber(piece, *value) ? 1 : 0;
        }
        if (isUninterpretedVR(vr)) {
            const Uint8 *bytes = nullptr;
            unsigned long length = 0;
            if (!rawBytes(found, bytes, length)) return 0;
            switch (hint) {
            case MRS_HINT_FLOAT32: return littleEndianValue<Float32>(bytes, length, index, value);
            case MRS_HINT_FLOAT64: return littleEndianValue<Float64>(bytes, length, index, value);
            case MRS_HINT_INT16: return littleEndianValue<Sint16>(bytes, length, index, value);
            case MRS_HINT_TEXT: {
                std::string piece;
                if (!textValue(reinterpret_cast<const char *>(bytes), length, index, piece)) return 0;
                return parseNumber(piece, *value) ? 1 : 0;
            }
            }
        }
        return 0;
    });
}

int mrs_item_private_block(const mrs_item *item, uint16_t group, const char *creator) {
    return guardedValue<int>(-1, [&]() -> int {
        if (item == nullptr || creator == nullptr) return -1;
        const std::string wanted = upperTrimmed(creator, std::strlen(creator));
        DcmItem *dcmItem = asItem(item);
        // Elements are kept in tag order: walk to the group's creator range and stop after it.
        for (DcmObject *object = dcmItem->nextInContainer(nullptr); object != nullptr; object = dcmItem->nextInContainer(object)) {
            const DcmTagKey key = object->getTag();
            if (key.getGroup() < group) continue;
            if (key.getGroup() > group || key.getElement() > 0x00FF) break;
            if (key.getElement() < 0x0010) continue;
            char *text = nullptr;
            DcmElement *element = OFstatic_cast(DcmElement *, object);
            if (!isTextVR(element->ident()) && !isUninterpretedVR(element->ident())) continue;
            if (element->ident() == EVR_UN || element->ident() == EVR_OB || element->ident() == EVR_UNKNOWN) {
                const Uint8 *bytes = nullptr;
                unsigned long length = 0;
                if (!rawBytes(element, bytes, length)) continue;
                if (upperTrimmed(reinterpret_cast<const char *>(bytes), length) == wanted) return key.getElement();
            } else if (element->getString(text).good() && text != nullptr) {
                if (upperTrimmed(text, element->getLength()) == wanted) return key.getElement();
            }
        }
        return -1;
    });
}

long mrs_item_sequence_count(const mrs_item *item, uint16_t group, uint16_t element) {
    return guardedValue<long>(-1, [&]() -> long {
        if (item == nullptr) return -1;
        DcmSequenceOfItems *sequence = nullptr;
        if (asItem(item)->findAndGetSequence(DcmTagKey(group, element), sequence, OFFalse).bad() || sequence == nullptr)
            return -1;
        return long(sequence->card());
    });
}

mrs_item *mrs_item_sequence_item(const mrs_item *item, uint16_t group, uint16_t element, unsigned long index) {
    return guardedValue<mrs_item *>(nullptr, [&]() -> mrs_item * {
        if (item == nullptr) return nullptr;
        DcmSequenceOfItems *sequence = nullptr;
        if (asItem(item)->findAndGetSequence(DcmTagKey(group, element), sequence, OFFalse).bad() || sequence == nullptr)
            return nullptr;
        if (index >= sequence->card()) return nullptr;
        return asHandle(sequence->getItem(index));
    });
}

mrs_status mrs_item_put_string(mrs_item *item, uint16_t group, uint16_t element, const char *value, char *message,
                               size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (item == nullptr || value == nullptr) {
            setMessage(message, message_size, "no item or value");
            return MRS_INVALID_ARGUMENT;
        }
        OFCondition status = asItem(item)->putAndInsertString(DcmTag(group, element), value, OFTrue);
        if (status.bad()) {
            setMessage(message, message_size, conditionText(status));
            return MRS_INVALID_ARGUMENT;
        }
        return MRS_OK;
    });
}

mrs_item *mrs_item_append_sequence_item(mrs_item *item, uint16_t group, uint16_t element) {
    return guardedValue<mrs_item *>(nullptr, [&]() -> mrs_item * {
        if (item == nullptr) return nullptr;
        DcmItem *created = nullptr;
        if (asItem(item)->findOrCreateSequenceItem(DcmTag(group, element), created, -2).bad()) return nullptr;
        return asHandle(created);
    });
}

mrs_status mrs_save(mrs_file *file, const char *path, char *message, size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (file == nullptr || path == nullptr) {
            setMessage(message, message_size, "no file or path");
            return MRS_INVALID_ARGUMENT;
        }
        OFCondition status = file->format.loadAllDataIntoMemory();
        if (status.bad()) {
            setMessage(message, message_size, std::string("cannot load the original data: ") + conditionText(status));
            return MRS_UNREADABLE;
        }
        const E_TransferSyntax xfer = file->format.getDataset()->getOriginalXfer();
        errno = 0;
        status = file->format.saveFile(path, xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, EWM_dontUpdateMeta);
        if (status.bad()) {
            std::string text = conditionText(status);
            if (errno != 0) text += std::string(": ") + std::strerror(errno);
            setMessage(message, message_size, text);
            return MRS_WRITE_FAILED;
        }
        return MRS_OK;
    });
}

mrs_status mrs_pixel_layout_get(mrs_file *file, mrs_pixel_layout *layout, char *message, size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (file == nullptr || layout == nullptr) {
            setMessage(message, message_size, "no file or layout");
            return MRS_INVALID_ARGUMENT;
        }
        std::memset(layout, 0, sizeof *layout);
        DcmDataset *dataset = file->format.getDataset();
        const E_TransferSyntax xfer = dataset->getOriginalXfer();
        DcmXfer xferInfo(xfer);
        if (isJPEG2000(xfer)) {
            setMessage(message, message_size,
                       std::string("JPEG 2000 (") + xferInfo.getXferID() +
                           ") cannot be decoded: DCMTK's free toolkit has no JPEG 2000 codec");
            return MRS_UNSUPPORTED_TRANSFER_SYNTAX;
        }
        if (xferInfo.isEncapsulated() && !DcmCodecList::canChangeCoding(xfer, EXS_LittleEndianExplicit)) {
            setMessage(message, message_size,
                       std::string("no decoder for transfer syntax ") + xferInfo.getXferName() + " (" + xferInfo.getXferID() + ")");
            return MRS_UNSUPPORTED_TRANSFER_SYNTAX;
        }
        DcmElement *pixelElement = nullptr;
        if (dataset->findAndGetElement(DCM_PixelData, pixelElement).bad() || pixelElement == nullptr) {
            setMessage(message, message_size, "no PixelData (7FE0,0010)");
            return MRS_BAD_PIXEL_DATA;
        }
        Uint16 rows = 0, columns = 0, samples = 1, allocated = 0, stored = 0, high = 0, representation = 0;
        dataset->findAndGetUint16(DCM_Rows, rows);
        dataset->findAndGetUint16(DCM_Columns, columns);
        if (dataset->findAndGetUint16(DCM_SamplesPerPixel, samples).bad()) samples = 1;
        dataset->findAndGetUint16(DCM_BitsAllocated, allocated);
        if (dataset->findAndGetUint16(DCM_BitsStored, stored).bad()) stored = allocated;
        if (dataset->findAndGetUint16(DCM_HighBit, high).bad()) high = stored > 0 ? stored - 1 : 0;
        dataset->findAndGetUint16(DCM_PixelRepresentation, representation);
        // Checked at open against the pixel data the file holds.
        const uint64_t frames = file->frames;
        if (frames > UINT32_MAX) {
            setMessage(message, message_size, "NumberOfFrames " + std::to_string(frames) + " is out of range");
            return MRS_BAD_PIXEL_DATA;
        }
        if (rows == 0 || columns == 0) {
            setMessage(message, message_size, "Rows or Columns missing or zero");
            return MRS_BAD_PIXEL_DATA;
        }
        if (allocated != 8 && allocated != 16 && allocated != 32) {
            setMessage(message, message_size, "BitsAllocated " + std::to_string(allocated) + " is not supported (8, 16 or 32)");
            return MRS_BAD_PIXEL_DATA;
        }
        if (samples != 1 && samples != 3) {
            setMessage(message, message_size, "SamplesPerPixel " + std::to_string(samples) + " is not supported (1 or 3)");
            return MRS_BAD_PIXEL_DATA;
        }
        if (stored == 0 || stored > allocated || high + 1 < stored || high >= allocated) {
            setMessage(message, message_size,
                       "inconsistent BitsStored " + std::to_string(stored) + " / HighBit " + std::to_string(high) +
                           " / BitsAllocated " + std::to_string(allocated));
            return MRS_BAD_PIXEL_DATA;
        }
        DcmPixelData *pixelData = OFstatic_cast(DcmPixelData *, pixelElement);
        OFString colorModel;
        if (pixelData->getDecompressedColorModel(dataset, colorModel).bad()) {
            dataset->findAndGetOFString(DCM_PhotometricInterpretation, colorModel);
        }
        // Before anything is allocated for a frame: a crafted Rows x Columns must not size a buffer.
        const FrameGeometry geometry(dataset);
        if (geometry.bytes() > file->maxFrameBytes) {
            setMessage(message, message_size,
                       "a frame of " + geometry.text() + " decodes to " + std::to_string(geometry.bytes()) +
                           " bytes, more than the limit of " + std::to_string(file->maxFrameBytes));
            return MRS_BAD_PIXEL_DATA;
        }
        if (!xferInfo.isEncapsulated()) {
            // Divides instead of multiplying the frame size by the frame count, which could overflow.
            const uint64_t frameBytes = uint64_t(rows) * columns * samples * (allocated / 8);
            const uint64_t length = pixelElement->getLength();
            if (length / frameBytes < frames) {
                setMessage(message, message_size,
                           "PixelData holds " + std::to_string(length) + " bytes, " + std::to_string(frames) + " frames of " +
                               std::to_string(frameBytes) + " bytes expected");
                return MRS_BAD_PIXEL_DATA;
            }
        }
        layout->rows = rows;
        layout->columns = columns;
        layout->frames = Uint32(frames);
        layout->samples_per_pixel = samples;
        layout->bits_allocated = allocated;
        layout->bits_stored = stored;
        layout->high_bit = high;
        layout->pixel_representation = representation;
        std::snprintf(layout->photometric_interpretation, sizeof layout->photometric_interpretation, "%s", colorModel.c_str());
        return MRS_OK;
    });
}

mrs_status mrs_read_frame(mrs_file *file, uint32_t frame, float *values, size_t count, char *message,
                          size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        mrs_pixel_layout layout;
        mrs_status status = mrs_pixel_layout_get(file, &layout, message, message_size);
        if (status != MRS_OK) return status;
        if (frame >= layout.frames) {
            setMessage(message, message_size,
                       "frame " + std::to_string(frame) + " requested, the file has " + std::to_string(layout.frames));
            return MRS_INVALID_ARGUMENT;
        }
        const size_t pixels = size_t(layout.rows) * layout.columns;
        const size_t samples = pixels * layout.samples_per_pixel;
        if (values == nullptr || count < samples) {
            setMessage(message, message_size, "output buffer too small");
            return MRS_INVALID_ARGUMENT;
        }
        DcmDataset *dataset = file->format.getDataset();
        DcmElement *pixelElement = nullptr;
        dataset->findAndGetElement(DCM_PixelData, pixelElement);
        DcmPixelData *pixelData = OFstatic_cast(DcmPixelData *, pixelElement);

        Uint32 frameSize = 0;
        OFCondition condition = pixelData->getUncompressedFrameSize(dataset, frameSize);
        if (condition.bad() || frameSize == 0) {
            setMessage(message, message_size, "cannot size a frame: " + conditionText(condition));
            return MRS_BAD_PIXEL_DATA;
        }
        // The frame size DCMTK computes (in 32 bits) must be the one checked against the ceiling.
        if (uint64_t(frameSize) > file->maxFrameBytes) {
            setMessage(message, message_size, "a decoded frame of " + std::to_string(frameSize) + " bytes is over the limit of " +
                                                  std::to_string(file->maxFrameBytes));
            return MRS_BAD_PIXEL_DATA;
        }
        // DCMTK needs room for the pad byte that makes an odd frame size even.
        const Uint32 bufferSize = frameSize + (frameSize & 1u);
        std::vector<Uint8> buffer(bufferSize);
        // Sequential reads reuse the fragment index; random access starts the search over.
        Uint32 startFragment = (frame == file->nextFrame) ? file->nextFragment : 0;
        OFString colorModel;
        condition = pixelData->getUncompressedFrame(dataset, frame, startFragment, buffer.data(), bufferSize, colorModel,
                                                    &file->cache);
        if (condition.bad()) {
            file->nextFrame = 0;
            file->nextFragment = 0;
            setMessage(message, message_size, "frame " + std::to_string(frame) + " cannot be decoded: " + conditionText(condition));
            return MRS_BAD_PIXEL_DATA;
        }
        file->nextFrame = frame + 1;
        file->nextFragment = startFragment;

        Uint16 planar = 0;
        if (layout.samples_per_pixel == 3) dataset->findAndGetUint16(DCM_PlanarConfiguration, planar);

        const unsigned shift = layout.high_bit + 1 - layout.bits_stored;
        const uint32_t mask = layout.bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << layout.bits_stored) - 1u);
        const bool isSigned = layout.pixel_representation == 1;
        const uint32_t signBit = layout.bits_stored >= 32 ? 0x80000000u : (1u << (layout.bits_stored - 1));
        auto convert = [&](uint32_t raw) -> float {
            uint32_t v = (raw >> shift) & mask;
            if (isSigned && (v & signBit)) return float(int64_t(v) - (int64_t(mask) + 1));
            return float(v);
        };
        const size_t bytesPerSample = layout.bits_allocated / 8;
        if (size_t(frameSize) < samples * bytesPerSample) {
            setMessage(message, message_size, "decoded frame is shorter than Rows x Columns x SamplesPerPixel");
            return MRS_BAD_PIXEL_DATA;
        }
        for (size_t i = 0; i < samples; ++i) {
            // Planar configuration 1 stores RRR..GGG..BBB; the output is always interleaved.
            size_t source = i;
            if (layout.samples_per_pixel == 3 && planar == 1) {
                const size_t pixel = i / 3, channel = i % 3;
                source = channel * pixels + pixel;
            }
            uint32_t raw = 0;
            switch (bytesPerSample) {
            case 1: raw = buffer[source]; break;
            case 2: { Uint16 v; std::memcpy(&v, &buffer[source * 2], 2); raw = v; break; }
            default: { Uint32 v; std::memcpy(&v, &buffer[source * 4], 4); raw = v; break; }
            }
            values[i] = convert(raw);
        }
        return MRS_OK;
    });
}

} // extern "C"
