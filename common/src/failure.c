/* failure.c - error code -> failure class (failure.h). */
#include "mgo/failure.h"

#include <stddef.h>
#include <string.h>

static const struct {
    const char *code;
    enum mgo_failure_class cls;
} classes[] = {
    {"INVALID_DEPLOYMENT", MGO_FAILURE_APP}, {"UNSUPPORTED_TYPE", MGO_FAILURE_DEVICE},
    {"INVALID_COMPONENT", MGO_FAILURE_APP},  {"INVALID_PARAMETER", MGO_FAILURE_APP},
    {"PARAMETER_REFUSED", MGO_FAILURE_APP},  {"NO_PACKAGE", MGO_FAILURE_APP},
    {"FETCH_FAILED", MGO_FAILURE_DEVICE},    {"DIGEST_MISMATCH", MGO_FAILURE_APP},
    {"PACKAGE_INVALID", MGO_FAILURE_APP},    {"IO_ERROR", MGO_FAILURE_DEVICE},
    {"CONFIG", MGO_FAILURE_DEVICE},          {"RUNTIME_NOT_FOUND", MGO_FAILURE_DEVICE},
    {"RUNTIME_FAILED", MGO_FAILURE_APP},     {"TIMEOUT", MGO_FAILURE_APP},
    {"NOT_RUNNING", MGO_FAILURE_APP},        {"NOT_DEPLOYED", MGO_FAILURE_APP},
    {"CANCELLED", MGO_FAILURE_NONE},
};

enum mgo_failure_class mgo_failure_class_of(const char *code)
{
    if (code == NULL || code[0] == '\0')
        return MGO_FAILURE_NONE;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (strcmp(classes[i].code, code) == 0)
            return classes[i].cls;
    return MGO_FAILURE_APP;
}

const char *mgo_failure_class_name(enum mgo_failure_class c)
{
    switch (c) {
    case MGO_FAILURE_DEVICE:
        return "device";
    case MGO_FAILURE_APP:
        return "app";
    case MGO_FAILURE_NONE:
        break;
    }
    return "none";
}
