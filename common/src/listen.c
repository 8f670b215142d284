/* listen.c - ADDRESS:PORT of a listening socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/listen.h"

mgo_err mgo_listen_parse(const char *text, struct sockaddr_storage *ss, bool *ipv6)
{
    memset(ss, 0, sizeof *ss);
    char host[64];
    const char *port_text;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return MGO_ERR_INVALID;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
        *ipv6 = true;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return MGO_ERR_INVALID;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
        *ipv6 = false;
    }
    char *end = NULL;
    long port = strtol(port_text, &end, 10);
    if (port_text[0] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return MGO_ERR_INVALID;
    if (*ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return MGO_ERR_INVALID;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return MGO_ERR_INVALID;
    }
    return MGO_OK;
}
