/*
 * cdcmtk_network.h: DICOM networking (DIMSE C-STORE) through DCMTK's dcmnet, behind a plain C
 * interface: a storage SCP that writes each received instance whole into a folder, and a storage
 * SCU that sends files and reports every instance's response status.
 *
 * Same policy as cdcmtk.h: no C++ exception crosses this boundary, failures are statuses with a
 * human-readable message in a caller buffer.
 */
#ifndef MRSORT_CDCMTK_NETWORK_H
#define MRSORT_CDCMTK_NETWORK_H

#include "cdcmtk.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Something a receiver reports as it happens (for the caller's log), from any of its threads. */
typedef void (*mrs_receiver_event)(void *context, int is_error, const char *message);

/** How the storage SCP listens and where it writes. Strings are copied by mrs_receiver_run. */
typedef struct mrs_receiver_options {
    /** This node's AE title; associations that call another title are refused. */
    const char *ae_title;
    uint16_t port;
    /** Calling AE titles allowed to associate; NULL or count 0: any. */
    const char *const *allowed_calling_ae_titles;
    size_t allowed_calling_count;
    /** Where complete instances appear, each renamed into place under its SOP Instance UID. */
    const char *folder;
    /** Where instances are written while they arrive; must be on the file system of `folder`. */
    const char *staging;
    /** Associations served at the same time. */
    uint16_t maximum_associations;
    /** Below this many free bytes on the folder's file system, C-STORE is answered 0xA700 (out of resources). */
    uint64_t minimum_free_bytes;
    /** ACSE and DIMSE timeout in seconds (a peer that stops sending is dropped). */
    uint32_t timeout_seconds;
    mrs_receiver_event on_event;
    void *event_context;
} mrs_receiver_options;

/** What the receiver has done since it started. */
typedef struct mrs_receiver_counters {
    uint64_t associations_accepted;
    uint64_t associations_refused;
    uint64_t associations_active;
    uint64_t instances_received;
    uint64_t instances_failed;
    uint64_t bytes_received;
    uint64_t echoes;
} mrs_receiver_counters;

/**
 * Opens the port and serves associations until mrs_receiver_stop is called. One receiver per
 * process. Returns MRS_OK after a stop, MRS_INVALID_ARGUMENT for bad options, MRS_UNREADABLE
 * when the port cannot be opened (in use, permission), with the reason in message.
 */
mrs_status mrs_receiver_run(const mrs_receiver_options *options, char *message, size_t message_size);

/** Asks a running receiver to stop after the associations in progress. Async-signal-unsafe; call from a thread. */
void mrs_receiver_stop(void);

/** The running (or last) receiver's counters. */
void mrs_receiver_counters_get(mrs_receiver_counters *counters);

/** Where and how a storage SCU sends. */
typedef struct mrs_send_options {
    const char *host;
    uint16_t port;
    const char *called_ae_title;
    const char *calling_ae_title;
    /** Connection, ACSE and DIMSE timeout in seconds. */
    uint32_t timeout_seconds;
} mrs_send_options;

/** Status of a file that was not sent (the association failed or ended before it). */
#define MRS_SEND_NOT_SENT 0xFFFFu
/** Status of a file that cannot be sent at all: unreadable, not DICOM, no SOP UIDs. */
#define MRS_SEND_UNREADABLE 0xFFFEu

/**
 * Sends the files over as many associations as their SOP classes and transfer syntaxes need. Each
 * file is proposed in the transfer syntax it is stored in (so a destination that accepts it gets
 * the stored bytes), with explicit and implicit little endian as a converted fallback.
 * statuses[i] receives the DIMSE status of file i's C-STORE response (0x0000 success, 0xB...
 * warning, others failure) or MRS_SEND_NOT_SENT / MRS_SEND_UNREADABLE. Returns MRS_OK when every
 * association was negotiated and released, otherwise the first failure (peer unreachable,
 * association rejected or aborted) with its reason; the statuses say what reached the peer either way.
 */
mrs_status mrs_send_files(const mrs_send_options *options, const char *const *paths, size_t count,
                          uint16_t *statuses, char *message, size_t message_size);

#ifdef __cplusplus
}
#endif

#endif
