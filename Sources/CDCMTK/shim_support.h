// Helpers shared by the shim's translation units (not part of the C interface).
#ifndef MRSORT_SHIM_SUPPORT_H
#define MRSORT_SHIM_SUPPORT_H

#include "cdcmtk.h"

#include <cstdio>
#include <exception>
#include <new>
#include <string>

namespace mrs_shim {

inline void setMessage(char *message, size_t size, const char *text) noexcept {
    if (message == nullptr || size == 0) return;
    std::snprintf(message, size, "%s", text);
}

inline void setMessage(char *message, size_t size, const std::string &text) noexcept { setMessage(message, size, text.c_str()); }

/**
 * Runs the body of an entry point that reports a status, turning any C++ exception (std::bad_alloc
 * from a container, anything DCMTK or the standard library throws) into a status and a message:
 * an exception must never unwind into Swift, which cannot catch it.
 */
template <typename Body>
inline mrs_status guarded(char *message, size_t size, Body &&body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        setMessage(message, size, "out of memory");
    } catch (const std::exception &error) {
        char text[256];
        std::snprintf(text, sizeof text, "internal error: %s", error.what());
        setMessage(message, size, text);
    } catch (...) {
        setMessage(message, size, "internal error: unknown exception");
    }
    return MRS_MALFORMED;
}

/** Runs the body of an entry point without a status; any exception gives `fallback` (its "absent"). */
template <typename Result, typename Body>
inline Result guardedValue(Result fallback, Body &&body) noexcept {
    try {
        return body();
    } catch (...) {
        return fallback;
    }
}

} // namespace mrs_shim

#endif
