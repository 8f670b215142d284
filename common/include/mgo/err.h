/* err.h - the one error enum of margo-mqtt.
 *
 * Values are failure classes, not protocol reason codes.  Foreign codes (errno, Paho,
 * msgpack-c, OpenSSL, SQLite) are translated where they are returned and their native
 * detail is logged once there. */
#ifndef MGO_ERR_H
#define MGO_ERR_H

#define MGO_MUST_CHECK __attribute__((warn_unused_result))
#define MGO_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

typedef enum mgo_err {
    MGO_OK = 0,
    MGO_ERR_NOMEM,     /* an allocation failed or a memory cap was reached */
    MGO_ERR_PARSE,     /* bytes are not well-formed MessagePack, YAML or JSON */
    MGO_ERR_INVALID,   /* well-formed but breaks a rule of the document's schema */
    MGO_ERR_LIMIT,     /* a named limit (size, length, count, depth) was exceeded */
    MGO_ERR_IO,        /* a file or socket operation failed */
    MGO_ERR_NOT_FOUND, /* the named thing does not exist */
    MGO_ERR_EXISTS,    /* the named thing already exists */
    MGO_ERR_CONFLICT,  /* refused because of the current state (e.g. app still deployed) */
    MGO_ERR_STALE,     /* older than what is already known (manifestVersion, sequence) */
    MGO_ERR_CRYPTO,    /* digest or signature failure */
    MGO_ERR_NET,       /* broker or HTTP connection failure */
    MGO_ERR_TIMEOUT,   /* a deadline passed */
    MGO_ERR_AUTH,      /* missing or wrong credentials */
    MGO_ERR_RUNTIME,   /* the container runtime or an external command failed */
    MGO_ERR_BUSY,      /* held by another for now (a row lock of another manager): try again */
    MGO_ERR_INTERNAL,  /* a bug: an invariant did not hold */
} mgo_err;

/* Returns a static, lowercase description; never NULL. */
const char *mgo_strerror(mgo_err err);

#endif
