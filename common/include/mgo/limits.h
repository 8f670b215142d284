/* limits.h - every bound margo-mqtt enforces on input, as compile-time constants.
 * Each limit has a test at the limit and one past it (tests/common/test_limits.c). */
#ifndef MGO_LIMITS_H
#define MGO_LIMITS_H

/* Largest MQTT payload accepted or produced (also set as the broker's message_size_limit). */
#define MGO_MAX_MESSAGE_BYTES (256u * 1024u)
/* Largest YAML/JSON document file read from disk. */
#define MGO_MAX_FILE_BYTES (1024u * 1024u)
/* Longest string value (bytes) anywhere in a document. */
#define MGO_MAX_STRING_BYTES (16u * 1024u)
/* Most items in one array and entries in one map. */
#define MGO_MAX_ARRAY_ITEMS 1024u
#define MGO_MAX_MAP_ENTRIES 1024u
/* Deepest nesting of arrays and maps (the root container is depth 1). */
#define MGO_MAX_DEPTH 24u
/* Memory one decoded document may use (arena cap). */
#define MGO_MAX_DOC_ARENA_BYTES (4u * 1024u * 1024u)

/* Identifiers. */
#define MGO_MAX_DEVICE_ID_LEN 128u    /* one topic level: [A-Za-z0-9._~-] */
#define MGO_MAX_DEPLOYMENT_ID_LEN 64u /* one topic level; Margo uses UUIDs (36) */
#define MGO_MAX_APP_ID_LEN 200u       /* Margo: ^[-a-z0-9]{1,200}$ */
#define MGO_MAX_NAME_LEN 253u         /* component names, metadata.name, namespace */
#define MGO_MAX_APP_VERSION_LEN                                                                    \
    128u                      /* a description's metadata.version, the deployment's                \
                                 applicationVersion annotation, a status's app.version */
#define MGO_UUID_STR_SIZE 37u /* a UUID as text (36) with its NUL: deployment ids */
#define MGO_MAX_TOPIC_LEN 512u
#define MGO_MAX_TOPIC_PREFIX_LEN 128u

/* Document shape. */
#define MGO_MAX_DEPLOYMENTS 256u    /* deployments in one desired-state manifest */
#define MGO_MAX_DEPLOY_DEVICES 256u /* devices one deploy request names */
#define MGO_MAX_COMPONENTS 64u      /* components in one profile or status */
#define MGO_MAX_PROFILES 16u        /* deployment profiles in one description */
#define MGO_MAX_PARAMETERS 256u     /* parameters in one description or deployment */
#define MGO_MAX_TARGETS 32u         /* targets of one parameter */

/* Validation problems kept per document (further ones are counted, not stored). */
#define MGO_MAX_PROBLEMS 32u
#define MGO_MAX_FIELD_PATH 256u
#define MGO_MAX_PROBLEM_TEXT 256u

#endif
