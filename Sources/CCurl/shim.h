#ifndef DROVER_CCURL_SHIM_H
#define DROVER_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt is variadic, which Swift cannot call: one typed wrapper per argument kind. */
static inline CURLcode drover_curl_set_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode drover_curl_set_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode drover_curl_set_pointer(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode drover_curl_set_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}
typedef size_t (*drover_curl_data_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode drover_curl_set_data_callback(CURL *curl, CURLoption option, drover_curl_data_callback callback) {
    return curl_easy_setopt(curl, option, callback);
}
typedef int (*drover_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
static inline CURLcode drover_curl_set_progress_callback(CURL *curl, drover_curl_progress_callback callback) {
    return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, callback);
}
/* CURLOPT_OPENSOCKETFUNCTION: the address rule's last check, on the address curl is about to connect. */
typedef curl_socket_t (*drover_curl_opensocket_callback)(void *context, curlsocktype purpose, struct curl_sockaddr *address);
static inline CURLcode drover_curl_set_opensocket_callback(CURL *curl, drover_curl_opensocket_callback callback) {
    return curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, callback);
}
static inline CURLcode drover_curl_get_response_code(CURL *curl, long *code) {
    return curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
}
/* The socket of a CURLOPT_CONNECT_ONLY transfer, for polling it. */
static inline CURLcode drover_curl_get_socket(CURL *curl, curl_socket_t *socket) {
    return curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, socket);
}

/* The multi interface on an event loop (`CurlLoop`): libcurl says which sockets to watch and
   when to call it back; the loop tells it what became ready. */
typedef int (*drover_curl_socket_callback)(CURL *easy, curl_socket_t socket, int what, void *context, void *socketp);
static inline CURLMcode drover_curl_multi_set_socket_callback(CURLM *multi, drover_curl_socket_callback callback, void *context) {
    CURLMcode code = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, callback);
    return code != CURLM_OK ? code : curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, context);
}
typedef int (*drover_curl_timer_callback)(CURLM *multi, long timeout_ms, void *context);
static inline CURLMcode drover_curl_multi_set_timer_callback(CURLM *multi, drover_curl_timer_callback callback, void *context) {
    CURLMcode code = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, callback);
    return code != CURLM_OK ? code : curl_multi_setopt(multi, CURLMOPT_TIMERDATA, context);
}
/* The next finished transfer, if any: its handle and result (curl_multi_info_read's CURLMsg is a
   union Swift cannot read). */
static inline int drover_curl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result) {
    int left = 0;
    CURLMsg *message;
    while ((message = curl_multi_info_read(multi, &left)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *easy = message->easy_handle;
            *result = message->data.result;
            return 1;
        }
    }
    return 0;
}
static const int drover_curl_poll_in = CURL_POLL_IN, drover_curl_poll_out = CURL_POLL_OUT,
                 drover_curl_poll_inout = CURL_POLL_INOUT, drover_curl_poll_remove = CURL_POLL_REMOVE;
static const int drover_curl_cselect_in = CURL_CSELECT_IN, drover_curl_cselect_out = CURL_CSELECT_OUT,
                 drover_curl_cselect_err = CURL_CSELECT_ERR;
static const curl_socket_t drover_curl_socket_timeout = CURL_SOCKET_TIMEOUT;
#endif
