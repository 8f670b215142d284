/* listen.h - the address of a listening socket as configured (api-listen, metrics-listen):
 * "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80"; port 0 lets the system pick one. */
#ifndef MGO_LISTEN_H
#define MGO_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

#include "mgo/err.h"

/* Fills ss (AF_INET or AF_INET6, *ipv6 says which). MGO_ERR_INVALID when text is not a
 * numeric IPv4 ADDRESS:PORT or [IPv6]:PORT with a port in 0..65535. */
mgo_err mgo_listen_parse(const char *text, struct sockaddr_storage *ss, bool *ipv6) MGO_MUST_CHECK;

#endif
