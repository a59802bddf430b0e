/*
 * cdcmtk.h: the part of DCMTK that mrsort uses, behind a plain C interface.
 *
 * Swift cannot reach DcmDataset through C++ interop, so this header exposes
 * opaque handles and small, total functions. Every function that can fail
 * returns an mrs_status and writes a human-readable reason into a caller
 * buffer; nothing here aborts or throws across the C boundary.
 */
#ifndef MRSORT_CDCMTK_H
#define MRSORT_CDCMTK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Outcome of a shim call. */
typedef enum mrs_status {
    MRS_OK = 0,
    /** The path could not be opened or read (errno text in the message). */
    MRS_UNREADABLE = 1,
    /** The path is a directory. */
    MRS_IS_DIRECTORY = 2,
    /** The bytes are not a DICOM file (no DICM preamble, no DICOM dataset start). */
    MRS_NOT_DICOM = 3,
    /** The file ends before the data it announces. */
    MRS_TRUNCATED = 4,
    /** The file is DICOM but its structure could not be parsed. */
    MRS_MALFORMED = 5,
    /** The transfer syntax is unknown or cannot be decoded by this build. */
    MRS_UNSUPPORTED_TRANSFER_SYNTAX = 6,
    /** The file has no pixel data, or pixel data that does not match its description. */
    MRS_BAD_PIXEL_DATA = 7,
    /** A write, flush or sync failed (errno text in the message). */
    MRS_WRITE_FAILED = 8,
    /** A caller error: index out of range, buffer too small, bad argument. */
    MRS_INVALID_ARGUMENT = 9
} mrs_status;

/** A DICOM file loaded into memory (the header always; pixel data on demand). */
typedef struct mrs_file mrs_file;
/** An item inside a file: the dataset, the meta header or a sequence item. Borrowed from its file. */
typedef struct mrs_item mrs_item;

/** How to interpret the bytes of an element whose VR is UN (private tags in implicit-VR files). */
typedef enum mrs_binary_hint {
    /** Backslash-separated decimal text (IS, DS). */
    MRS_HINT_TEXT = 0,
    /** Little-endian IEEE float32 values (FL). */
    MRS_HINT_FLOAT32 = 1,
    /** Little-endian IEEE float64 values (FD). */
    MRS_HINT_FLOAT64 = 2,
    /** Little-endian signed 16-bit values (SS). */
    MRS_HINT_INT16 = 3
} mrs_binary_hint;

/** Registers DCMTK's decoders and silences its logger. Idempotent and thread-safe. */
void mrs_initialize(void);

/**
 * Opens a DICOM file.
 *
 * Before DCMTK parses anything, the file's structure is walked without recursion: sequences
 * nested more than 64 deep give MRS_MALFORMED (DCMTK's recursive parser would overflow the
 * stack), and a file that ends inside an element, sequence or item gives MRS_TRUNCATED.
 * After parsing, NumberOfFrames is checked against what the file can hold (MRS_BAD_PIXEL_DATA).
 * With header_only == 0 the file must also be complete: a file that describes an image but
 * ends before its pixel data gives MRS_TRUNCATED, and an image whose decoded frame would
 * exceed max_frame_bytes gives MRS_BAD_PIXEL_DATA.
 * @param header_only when non-zero, parsing stops before PixelData (7FE0,0010).
 * @param max_frame_bytes the most bytes one decoded frame may take (also applied by
 *        mrs_pixel_layout_get and mrs_read_frame); at most 0xFFFFFFF0.
 * @param out receives the file on success; release it with mrs_close.
 */
mrs_status mrs_open(const char *path, int header_only, uint64_t max_frame_bytes, mrs_file **out,
                    char *message, size_t message_size);

/** NumberOfFrames as checked at open (1 when absent or not a positive integer). */
uint64_t mrs_frame_count(const mrs_file *file);

/** Releases a file and every item borrowed from it. NULL is ignored. */
void mrs_close(mrs_file *file);

/** The main dataset of the file. */
mrs_item *mrs_dataset(mrs_file *file);
/** The file meta information (group 0002); never NULL, possibly empty. */
mrs_item *mrs_meta(mrs_file *file);

/** The UID of the transfer syntax the dataset was read in, into buffer. Returns its length. */
size_t mrs_transfer_syntax(mrs_file *file, char *buffer, size_t size);

/** Non-zero when the item holds the element. */
int mrs_item_contains(const mrs_item *item, uint16_t group, uint16_t element);

/**
 * The whole value of a string-valued element (all values, backslash-separated), raw bytes.
 * Returns -1 when absent or not a string; otherwise the value's length, which may exceed
 * size (the buffer then holds a truncated copy; call again with a larger one).
 */
long mrs_item_string(const mrs_item *item, uint16_t group, uint16_t element,
                     char *buffer, size_t size);

/**
 * The value multiplicity of an element; 0 when absent or empty. Elements with
 * VR UN are counted with the hint.
 */
unsigned long mrs_item_multiplicity(const mrs_item *item, uint16_t group, uint16_t element,
                                    mrs_binary_hint hint);

/**
 * One value of a numeric element (DS, IS, FL, FD, US, SS, UL, SL; UN read with the hint).
 * Returns 1 and writes the value when present and parseable, 0 otherwise.
 */
int mrs_item_number(const mrs_item *item, uint16_t group, uint16_t element,
                    unsigned long index, mrs_binary_hint hint, double *value);

/**
 * The block of the private creator `creator` in `group`: the xx of the creator element
 * (gggg,00xx) whose value equals `creator` (case-insensitive, padding ignored), or -1.
 * Walks the item once.
 */
int mrs_item_private_block(const mrs_item *item, uint16_t group, const char *creator);

/** Number of items of a sequence element; -1 when absent or not a sequence. */
long mrs_item_sequence_count(const mrs_item *item, uint16_t group, uint16_t element);

/** Item `index` of a sequence element, or NULL. */
mrs_item *mrs_item_sequence_item(const mrs_item *item, uint16_t group, uint16_t element,
                                 unsigned long index);

/** Inserts or replaces a string element (VR from the data dictionary). */
mrs_status mrs_item_put_string(mrs_item *item, uint16_t group, uint16_t element,
                               const char *value, char *message, size_t message_size);

/** Appends a new, empty item to a sequence (creating the sequence if absent) and returns it. */
mrs_item *mrs_item_append_sequence_item(mrs_item *item, uint16_t group, uint16_t element);

/**
 * Writes the file to path in its original transfer syntax, keeping its meta header.
 * The caller is responsible for syncing and renaming (see the Swift rewriter).
 */
mrs_status mrs_save(mrs_file *file, const char *path, char *message, size_t message_size);

/** What the pixel data of a file is made of. */
typedef struct mrs_pixel_layout {
    uint32_t rows;
    uint32_t columns;
    uint32_t frames;
    uint32_t samples_per_pixel;
    uint32_t bits_allocated;
    uint32_t bits_stored;
    uint32_t high_bit;
    uint32_t pixel_representation;
    /** Colour model of the decoded frames (e.g. MONOCHROME2, RGB, YBR_FULL). */
    char photometric_interpretation[32];
} mrs_pixel_layout;

/**
 * Describes the pixel data of a file opened with header_only == 0. Fails with
 * MRS_UNSUPPORTED_TRANSFER_SYNTAX for compressions this build cannot decode
 * (JPEG 2000 is not part of DCMTK's free toolkit), and with MRS_BAD_PIXEL_DATA
 * where a frame would decode to more than the file's max_frame_bytes.
 */
mrs_status mrs_pixel_layout_get(mrs_file *file, mrs_pixel_layout *layout,
                                char *message, size_t message_size);

/**
 * Decodes frame `frame` (0-based) into `values` as stored values (sign-extended,
 * masked to BitsStored), samples interleaved per pixel. `count` must be at least
 * rows * columns * samples_per_pixel. No rescale is applied: slope and intercept
 * may differ per frame and are applied by the caller.
 */
mrs_status mrs_read_frame(mrs_file *file, uint32_t frame, float *values, size_t count,
                          char *message, size_t message_size);

#ifdef __cplusplus
}
#endif

#endif

/* DICOM networking: the storage SCP and SCU. */
#include "cdcmtk_network.h"
