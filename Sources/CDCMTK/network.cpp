// DICOM networking for mrsort: a storage SCP and a storage SCU. See include/cdcmtk_network.h.
//
// The receiver is a pool of DcmThreadSCP workers. Each C-STORE is written bit-preserving into
// a staging folder, synced, and only then linked into the watched folder under its SOP Instance
// UID: the agent never sees a file that is still arriving, and a name already there is never
// replaced. The response (success) goes out after the link, so a sender's "stored" means a
// whole, synced file in the folder.

#include "cdcmtk_network.h"
#include "shim_support.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/dcmnet/scppool.h>
#include <dcmtk/dcmnet/scpthrd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

using namespace mrs_shim;

namespace {

/// What every worker of the one receiver of the process reads (set before the pool starts).
struct ReceiverSettings {
    std::string aeTitle;
    std::vector<std::string> allowedCalling;
    std::string folder;
    std::string staging;
    uint64_t minimumFreeBytes = 0;
    mrs_receiver_event onEvent = nullptr;
    void *eventContext = nullptr;
};

ReceiverSettings settings;
std::mutex receiverMutex;
std::atomic<DcmBaseSCPPool *> runningPool{nullptr};
std::atomic<uint64_t> accepted{0}, refused{0}, active{0}, received{0}, failed{0}, bytes{0}, echoes{0}, stagingSerial{0};

std::once_flag networkOnce;

/// Debian builds DCMTK with Nagle's algorithm left on unless $TCP_NODELAY says otherwise; with it
/// every C-STORE waits for the peer's delayed acknowledgement (about 45 ms, some 20 instances/s on
/// loopback). Set once, before the first socket, unless the environment already decides.
void initializeNetwork() {
    mrs_initialize();
    std::call_once(networkOnce, [] { ::setenv("TCP_NODELAY", "1", 0); });
}

void report(bool isError, const std::string &text) {
    if (settings.onEvent != nullptr) settings.onEvent(settings.eventContext, isError ? 1 : 0, text.c_str());
}

/// AE titles compare without their padding spaces (PS3.8 9.3.2: leading and trailing spaces are not significant).
std::string trimmed(const OFString &text) {
    std::string value(text.c_str());
    const auto first = value.find_first_not_of(' ');
    if (first == std::string::npos) return "";
    return value.substr(first, value.find_last_not_of(' ') - first + 1);
}

/// A SOP Instance UID as a file name: digits and dots only, at most 64 characters; anything
/// else (a hostile UID with '/' or '..') gets a generated name.
std::string instanceFileName(const char *uid) {
    std::string value = uid == nullptr ? "" : trimmed(uid);
    bool valid = !value.empty() && value.size() <= 64 && value.front() != '.';
    for (char c : value) valid = valid && ((c >= '0' && c <= '9') || c == '.');
    if (!valid) value = "instance-" + std::to_string(::getpid()) + "-" + std::to_string(stagingSerial.fetch_add(1));
    return value;
}

bool syncPath(const std::string &path, bool directory) {
    const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

/// One association's worker.
class StorageReceiverSCP : public DcmThreadSCP {
public:
    StorageReceiverSCP() = default;

protected:
    OFBool checkCalledAETitleAccepted(const OFString &calledAE) override {
        if (trimmed(calledAE) == settings.aeTitle) return OFTrue;
        refused.fetch_add(1);
        report(true, "association refused: called AE title '" + trimmed(calledAE) + "' is not this node's ('" + settings.aeTitle + "')");
        return OFFalse;
    }

    OFBool checkCallingAETitleAccepted(const OFString &callingAE) override {
        const std::string calling = trimmed(callingAE);
        if (settings.allowedCalling.empty()) return OFTrue;
        for (const auto &allowed : settings.allowedCalling) {
            if (allowed == calling) return OFTrue;
        }
        refused.fetch_add(1);
        report(true, "association refused: calling AE title '" + calling + "' is not in allowed_calling_ae_titles");
        return OFFalse;
    }

    void notifyAssociationAcknowledge() override {
        accepted.fetch_add(1);
        active.fetch_add(1);
        associationActive = true;
        associationInstances = 0;
        report(false, "association accepted from '" + trimmed(getPeerAETitle()) + "' at " + std::string(getPeerIP().c_str()));
    }

    void notifyAssociationTermination() override {
        if (!associationActive) return;
        associationActive = false;
        active.fetch_sub(1);
        report(false, "association with '" + trimmed(getPeerAETitle()) + "' ended: " + std::to_string(associationInstances) + " instance(s) stored");
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message *message, const DcmPresentationContextInfo &info) override {
        if (message->CommandField == DIMSE_C_ECHO_RQ) echoes.fetch_add(1);
        if (message->CommandField != DIMSE_C_STORE_RQ) return DcmThreadSCP::handleIncomingCommand(message, info);
        T_DIMSE_C_StoreRQ &request = message->msg.CStoreRQ;
        // Already below the floor: the association is aborted before anything is written (a
        // C-STORE cannot be answered before its dataset is read); the sender retries later.
        if (belowFreeSpaceFloor()) {
            failed.fetch_add(1);
            report(true, std::string("C-STORE of ") + request.AffectedSOPInstanceUID + " refused, association aborted: less than minimum_free_megabytes free in " + settings.folder);
            return makeOFCondition(OFM_dcmnet, 1000, OF_error, "insufficient free space");
        }
        const std::string part = settings.staging + "/" + std::to_string(::getpid()) + "-" + std::to_string(stagingSerial.fetch_add(1)) + ".part";
        OFCondition condition = receiveSTORERequest(request, info.presentationContextID, OFString(part.c_str()));
        if (condition.bad()) {
            ::unlink(part.c_str());
            failed.fetch_add(1);
            report(true, std::string("C-STORE of ") + request.AffectedSOPInstanceUID + " not received: " + condition.text());
            return condition;
        }
        const Uint16 status = place(part, request.AffectedSOPInstanceUID);
        return sendSTOREResponse(info.presentationContextID, request, status);
    }

private:
    bool associationActive = false;
    uint64_t associationInstances = 0;

    /// Syncs the received file and links it into the folder under a name not yet taken.
    static bool belowFreeSpaceFloor() {
        struct statvfs space;
        return ::statvfs(settings.folder.c_str(), &space) == 0
            && uint64_t(space.f_bavail) * uint64_t(space.f_frsize) < settings.minimumFreeBytes;
    }

    Uint16 place(const std::string &part, const char *uid) {
        if (belowFreeSpaceFloor()) {
            ::unlink(part.c_str());
            failed.fetch_add(1);
            report(true, std::string("C-STORE of ") + uid + " refused: less than minimum_free_megabytes free in " + settings.folder);
            return STATUS_STORE_Refused_OutOfResources;
        }
        struct stat info;
        if (!syncPath(part, false) || ::stat(part.c_str(), &info) != 0) {
            const std::string reason = std::strerror(errno);
            ::unlink(part.c_str());
            failed.fetch_add(1);
            report(true, std::string("C-STORE of ") + uid + " not stored: sync of " + part + ": " + reason);
            return STATUS_STORE_Refused_OutOfResources;
        }
        const std::string base = settings.folder + "/" + instanceFileName(uid);
        std::string target = base + ".dcm";
        int error = 0;
        for (int copy = 1; copy <= 1000; ++copy) {
            // link(2) fails on an existing name: an instance sent twice is kept twice, never replaced.
            if (::link(part.c_str(), target.c_str()) == 0) {
                error = 0;
                break;
            }
            error = errno;
            if (error != EEXIST) break;
            target = base + "~" + std::to_string(copy) + ".dcm";
        }
        ::unlink(part.c_str());
        if (error != 0) {
            failed.fetch_add(1);
            report(true, std::string("C-STORE of ") + uid + " not stored: link into " + settings.folder + ": " + std::strerror(error));
            return STATUS_STORE_Refused_OutOfResources;
        }
        syncPath(settings.folder, true);
        received.fetch_add(1);
        bytes.fetch_add(uint64_t(info.st_size));
        associationInstances += 1;
        return STATUS_Success;
    }
};

/// Verification and DCMTK's long list of storage SOP classes (120: every image class, MR
/// spectroscopy, raw data, structured reports, presentation states, encapsulated documents), in
/// the transfer syntaxes stored as received. An SCP profile holds at most 128 presentation
/// contexts, fewer than the 186 storage classes DCMTK knows.
OFCondition addStoragePresentationContexts(DcmSCPConfig &config) {
    OFList<OFString> syntaxes;
    for (const char *uid : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                            UID_BigEndianExplicitTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                            UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
                            UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax,
                            UID_JPEGLSLosslessTransferSyntax, UID_JPEGLSLossyTransferSyntax,
                            UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax,
                            UID_RLELosslessTransferSyntax}) {
        syntaxes.push_back(uid);
    }
    OFList<OFString> uncompressed;
    uncompressed.push_back(UID_LittleEndianExplicitTransferSyntax);
    uncompressed.push_back(UID_LittleEndianImplicitTransferSyntax);
    OFCondition condition = config.addPresentationContext(UID_VerificationSOPClass, uncompressed);
    for (int i = 0; condition.good() && i < numberOfDcmLongSCUStorageSOPClassUIDs; ++i) {
        condition = config.addPresentationContext(dcmLongSCUStorageSOPClassUIDs[i], syntaxes);
    }
    return condition;
}

/// A file to send: its SOP class and instance and the transfer syntax it is stored in.
struct Outgoing {
    size_t index;
    std::string sopClass;
    std::string transferSyntax;
};

/// Reads what the association needs from a file's meta header (else its dataset), without
/// loading large values.
bool describe(const char *path, size_t index, Outgoing &out) {
    DcmFileFormat format;
    if (format.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad()) return false;
    OFString sopClass, sopInstance;
    if (format.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, sopClass).bad() || sopClass.empty()) {
        format.getDataset()->findAndGetOFString(DCM_SOPClassUID, sopClass);
    }
    if (format.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPInstanceUID, sopInstance).bad() || sopInstance.empty()) {
        format.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, sopInstance);
    }
    const DcmXfer xfer(format.getDataset()->getOriginalXfer());
    if (sopClass.empty() || sopInstance.empty() || xfer.getXfer() == EXS_Unknown) return false;
    out = Outgoing{index, sopClass.c_str(), xfer.getXferID()};
    return true;
}

} // namespace

extern "C" mrs_status mrs_receiver_run(const mrs_receiver_options *options, char *message, size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (options == nullptr || options->ae_title == nullptr || options->folder == nullptr || options->staging == nullptr
            || options->port == 0) {
            setMessage(message, message_size, "receiver options incomplete (AE title, port, folder and staging are needed)");
            return MRS_INVALID_ARGUMENT;
        }
        std::unique_lock<std::mutex> once(receiverMutex, std::try_to_lock);
        if (!once.owns_lock()) {
            setMessage(message, message_size, "a receiver is already running in this process");
            return MRS_INVALID_ARGUMENT;
        }
        initializeNetwork();
        settings = ReceiverSettings();
        settings.aeTitle = trimmed(options->ae_title);
        for (size_t i = 0; i < options->allowed_calling_count; ++i) {
            if (options->allowed_calling_ae_titles[i] != nullptr) settings.allowedCalling.push_back(trimmed(options->allowed_calling_ae_titles[i]));
        }
        settings.folder = options->folder;
        settings.staging = options->staging;
        settings.minimumFreeBytes = options->minimum_free_bytes;
        settings.onEvent = options->on_event;
        settings.eventContext = options->event_context;
        for (auto *counter : {&accepted, &refused, &active, &received, &failed, &bytes, &echoes}) counter->store(0);

        DcmSCPPool<StorageReceiverSCP> pool;
        DcmSCPConfig &config = pool.getConfig();
        config.setAETitle(settings.aeTitle.c_str());
        config.setRespondWithCalledAETitle(OFFalse);
        config.setPort(options->port);
        config.setMaxReceivePDULength(ASC_MAXIMUMPDUSIZE > 131072 ? 131072 : ASC_MAXIMUMPDUSIZE);
        // Not blocking, so that the listening loop sees a stop request within a second.
        config.setConnectionBlockingMode(DUL_NOBLOCK);
        config.setConnectionTimeout(1);
        const Uint32 timeout = options->timeout_seconds == 0 ? 60 : options->timeout_seconds;
        config.setACSETimeout(timeout);
        config.setDIMSETimeout(timeout);
        config.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
        config.setHostLookupEnabled(OFFalse);
        OFCondition condition = addStoragePresentationContexts(config);
        if (condition.bad()) {
            setMessage(message, message_size, std::string("presentation contexts: ") + condition.text());
            return MRS_INVALID_ARGUMENT;
        }
        pool.setMaxThreads(options->maximum_associations == 0 ? 4 : options->maximum_associations);
        runningPool.store(&pool);
        condition = pool.listen();
        runningPool.store(nullptr);
        if (condition.bad() && condition != NET_EC_StopAfterConnectionTimeout && condition != NET_EC_StopAfterAssociation) {
            setMessage(message, message_size, condition.text());
            return MRS_UNREADABLE;
        }
        return MRS_OK;
    });
}

extern "C" void mrs_receiver_stop(void) {
    if (DcmBaseSCPPool *pool = runningPool.load()) pool->stopAfterCurrentAssociations();
}

extern "C" void mrs_receiver_counters_get(mrs_receiver_counters *counters) {
    if (counters == nullptr) return;
    counters->associations_accepted = accepted.load();
    counters->associations_refused = refused.load();
    counters->associations_active = active.load();
    counters->instances_received = received.load();
    counters->instances_failed = failed.load();
    counters->bytes_received = bytes.load();
    counters->echoes = echoes.load();
}

extern "C" mrs_status mrs_send_files(const mrs_send_options *options, const char *const *paths, size_t count, uint16_t *statuses,
                                     char *message, size_t message_size) {
    return guarded(message, message_size, [&]() -> mrs_status {
        if (options == nullptr || options->host == nullptr || options->called_ae_title == nullptr || options->calling_ae_title == nullptr
            || (count > 0 && (paths == nullptr || statuses == nullptr))) {
            setMessage(message, message_size, "send options incomplete (host, called and calling AE titles are needed)");
            return MRS_INVALID_ARGUMENT;
        }
        initializeNetwork();
        std::vector<Outgoing> pending;
        for (size_t i = 0; i < count; ++i) {
            statuses[i] = MRS_SEND_NOT_SENT;
            Outgoing item;
            if (paths[i] == nullptr || !describe(paths[i], i, item)) {
                statuses[i] = MRS_SEND_UNREADABLE;
                continue;
            }
            pending.push_back(item);
        }
        const Uint32 timeout = options->timeout_seconds == 0 ? 60 : options->timeout_seconds;
        const std::string peer = std::string(options->called_ae_title) + "@" + options->host + ":" + std::to_string(options->port);
        while (!pending.empty()) {
            // Each file is proposed in its own transfer syntax, alone, so that a destination that
            // accepts it receives the bytes as stored; a second context per SOP class offers the
            // uncompressed syntaxes (converted to) for one that does not. 128 contexts at most per
            // association: files of further kinds wait for the next one.
            std::vector<std::pair<std::string, std::string>> kinds;
            std::vector<std::string> classes;
            std::vector<Outgoing> batch, later;
            for (const auto &item : pending) {
                const auto kind = std::make_pair(item.sopClass, item.transferSyntax);
                const bool knownKind = std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
                const bool knownClass = std::find(classes.begin(), classes.end(), item.sopClass) != classes.end();
                if (!knownKind && kinds.size() + classes.size() + (knownClass ? 1 : 2) > 128) {
                    later.push_back(item);
                    continue;
                }
                if (!knownKind) kinds.push_back(kind);
                if (!knownClass) classes.push_back(item.sopClass);
                batch.push_back(item);
            }
            DcmSCU scu;
            scu.setAETitle(options->calling_ae_title);
            scu.setPeerHostName(options->host);
            scu.setPeerPort(options->port);
            scu.setPeerAETitle(options->called_ae_title);
            scu.setACSETimeout(timeout);
            scu.setDIMSETimeout(timeout);
            scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
            scu.setConnectionTimeout(Sint32(timeout));
            scu.setDatasetConversionMode(OFTrue);
            OFList<OFString> uncompressed;
            uncompressed.push_back(UID_LittleEndianExplicitTransferSyntax);
            uncompressed.push_back(UID_LittleEndianImplicitTransferSyntax);
            for (const auto &kind : kinds) {
                OFList<OFString> own;
                own.push_back(kind.second.c_str());
                scu.addPresentationContext(kind.first.c_str(), own);
            }
            for (const auto &sopClass : classes) scu.addPresentationContext(sopClass.c_str(), uncompressed);
            OFCondition condition = scu.initNetwork();
            if (condition.bad()) {
                setMessage(message, message_size, std::string("network: ") + condition.text());
                return MRS_UNREADABLE;
            }
            condition = scu.negotiateAssociation();
            if (condition.bad()) {
                setMessage(message, message_size, "association with " + peer + " failed: " + condition.text());
                return MRS_UNREADABLE;
            }
            for (const auto &item : batch) {
                T_ASC_PresentationContextID context = scu.findPresentationContextID(item.sopClass.c_str(), item.transferSyntax.c_str());
                if (context == 0) context = scu.findAnyPresentationContextID(item.sopClass.c_str(), item.transferSyntax.c_str());
                if (context == 0) {
                    // Refused: SOP Class not supported (PS3.4 Table B.2-1).
                    statuses[item.index] = 0x0122;
                    continue;
                }
                Uint16 response = 0;
                condition = scu.sendSTORERequest(context, OFFilename(paths[item.index]), nullptr, response);
                if (condition.bad()) {
                    setMessage(message, message_size, "sending to " + peer + " failed: " + condition.text());
                    scu.abortAssociation();
                    return MRS_UNREADABLE;
                }
                statuses[item.index] = response;
            }
            scu.releaseAssociation();
            pending.swap(later);
        }
        return MRS_OK;
    });
}
