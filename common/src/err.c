/* err.c - mgo_strerror */
#include "mgo/err.h"

const char *mgo_strerror(mgo_err err)
{
    switch (err) {
    case MGO_OK:
        return "success";
    case MGO_ERR_NOMEM:
        return "out of memory";
    case MGO_ERR_PARSE:
        return "malformed input";
    case MGO_ERR_INVALID:
        return "invalid input";
    case MGO_ERR_LIMIT:
        return "limit exceeded";
    case MGO_ERR_IO:
        return "i/o error";
    case MGO_ERR_NOT_FOUND:
        return "not found";
    case MGO_ERR_EXISTS:
        return "already exists";
    case MGO_ERR_CONFLICT:
        return "conflict with current state";
    case MGO_ERR_STALE:
        return "stale (older than what is known)";
    case MGO_ERR_CRYPTO:
        return "digest or signature failure";
    case MGO_ERR_NET:
        return "network or broker failure";
    case MGO_ERR_TIMEOUT:
        return "timed out";
    case MGO_ERR_AUTH:
        return "not authorized";
    case MGO_ERR_RUNTIME:
        return "runtime command failed";
    case MGO_ERR_BUSY:
        return "busy: held by another";
    case MGO_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown error";
}
