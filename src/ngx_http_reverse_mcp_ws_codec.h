/*
 * WebSocket frame codec (RFC 6455): pure C, no nginx dependency.
 *
 * Owns: the incremental frame parser (header, extended length, mask,
 * payload, fragmentation, control-frame rules, RSV bits, size limit checked
 * before any allocation, UTF-8 validation of whole text messages, close
 * frame payload checks), the frame encoder, and Sec-WebSocket-Accept.
 *
 * Shared by the nginx module (server side: client frames must be masked)
 * and by reverse-mcp-bridge (client side: server frames must not be masked,
 * our frames are masked).  Unit-tested in test/unit and fuzzed in test/fuzz.
 */

#ifndef _NGX_HTTP_REVERSE_MCP_WS_CODEC_H_INCLUDED_
#define _NGX_HTTP_REVERSE_MCP_WS_CODEC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_REVERSE_MCP_WS_OP_CONT        0x0
#define NGX_HTTP_REVERSE_MCP_WS_OP_TEXT        0x1
#define NGX_HTTP_REVERSE_MCP_WS_OP_BINARY      0x2
#define NGX_HTTP_REVERSE_MCP_WS_OP_CLOSE       0x8
#define NGX_HTTP_REVERSE_MCP_WS_OP_PING        0x9
#define NGX_HTTP_REVERSE_MCP_WS_OP_PONG        0xa

#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_NORMAL      1000
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_GOING_AWAY  1001
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_PROTOCOL    1002
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_UNSUPPORTED 1003
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_NO_STATUS   1005
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_ABNORMAL    1006
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_BAD_DATA    1007
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_POLICY      1008
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_TOO_BIG     1009
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_INTERNAL    1011
#define NGX_HTTP_REVERSE_MCP_WS_CLOSE_TRY_LATER   1013

/* return codes of ngx_http_reverse_mcp_ws_parse() */
#define NGX_HTTP_REVERSE_MCP_WS_OK        0
#define NGX_HTTP_REVERSE_MCP_WS_FAIL     -1   /* see parser->close_code */
#define NGX_HTTP_REVERSE_MCP_WS_STOP     -2   /* a callback asked to stop */

/* maximum size of a frame header: 2 + 8 (length) + 4 (mask) */
#define NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER  14


typedef struct ngx_http_reverse_mcp_ws_parser_s
    ngx_http_reverse_mcp_ws_parser_t;

/*
 * Callbacks return 0 to continue, non-zero to make the parser return
 * NGX_HTTP_REVERSE_MCP_WS_STOP at once (bytes up to and including the
 * frame that completed are reported as consumed).
 *
 * on_message: a complete data message (all fragments joined, unmasked,
 *   UTF-8 already checked when opcode is TEXT).  opcode is TEXT or BINARY.
 *   The buffer belongs to the parser and is valid only during the call.
 * on_control: a complete PING, PONG or CLOSE frame (payload <= 125 bytes,
 *   unmasked).  For CLOSE the payload was checked: empty, or 2-byte code
 *   that is valid on the wire followed by UTF-8 reason.
 */
typedef int (*ngx_http_reverse_mcp_ws_message_pt)(void *data, int opcode,
    const unsigned char *payload, size_t len);
typedef int (*ngx_http_reverse_mcp_ws_control_pt)(void *data, int opcode,
    const unsigned char *payload, size_t len);


struct ngx_http_reverse_mcp_ws_parser_s {
    /* set by the user before the first call */
    uint64_t                             max_message;
    unsigned                             server_side:1; /* peer must mask */
    ngx_http_reverse_mcp_ws_message_pt   on_message;
    ngx_http_reverse_mcp_ws_control_pt   on_control;
    void                                *data;

    /* set when ngx_http_reverse_mcp_ws_parse() returns FAIL */
    int                                  close_code;
    const char                          *error;     /* static string */

    /* private state */
    int                                  state;
    unsigned char                        hdr[NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER];
    size_t                               hdr_len;
    size_t                               hdr_need;
    int                                  opcode;       /* current frame */
    int                                  fin;
    int                                  masked;
    unsigned char                        mask[4];
    uint64_t                             frame_len;
    uint64_t                             frame_got;
    int                                  msg_opcode;   /* 0: none open */
    unsigned char                       *msg;          /* malloc'd */
    size_t                               msg_len;
    size_t                               msg_cap;
    unsigned char                        ctl[125];
    size_t                               ctl_len;
    uint64_t                             frames;       /* counters */
    uint64_t                             messages;
};


/* zero the private state; keeps the user fields */
void ngx_http_reverse_mcp_ws_parser_init(
    ngx_http_reverse_mcp_ws_parser_t *p);

/* release the message buffer; the parser may be re-initialised after */
void ngx_http_reverse_mcp_ws_parser_free(
    ngx_http_reverse_mcp_ws_parser_t *p);

/* free the message buffer unless a message is partly received */
void ngx_http_reverse_mcp_ws_parser_trim(
    ngx_http_reverse_mcp_ws_parser_t *p);

/* 1 when the parser holds no partial frame or message (idle) */
int ngx_http_reverse_mcp_ws_parser_idle(
    ngx_http_reverse_mcp_ws_parser_t *p);

/*
 * Feed bytes.  All of buf is consumed unless STOP is returned, in which
 * case *consumed tells how much was used.  Partial headers are kept inside
 * the parser; payload is copied (and unmasked) into the message buffer,
 * whose size is checked against max_message before it is allocated.
 */
int ngx_http_reverse_mcp_ws_parse(ngx_http_reverse_mcp_ws_parser_t *p,
    const unsigned char *buf, size_t len, size_t *consumed);

/*
 * Encode a frame header (FIN set) for a payload of len bytes into out
 * (at least NGX_HTTP_REVERSE_MCP_WS_MAX_HEADER bytes).  When mask is not
 * NULL the MASK bit and the 4 key bytes are written (client side) and the
 * caller must mask the payload with ngx_http_reverse_mcp_ws_mask().
 * Returns the header length.
 */
size_t ngx_http_reverse_mcp_ws_frame_header(unsigned char *out, int opcode,
    uint64_t len, const unsigned char *mask);

/* XOR buf with the 4-byte key, starting at key offset "offset" */
void ngx_http_reverse_mcp_ws_mask(unsigned char *buf, size_t len,
    const unsigned char *key, size_t offset);

/*
 * Build a close payload (2-byte code + reason truncated to 123 bytes at a
 * UTF-8 boundary) into out (125 bytes).  Returns its length.
 */
size_t ngx_http_reverse_mcp_ws_close_payload(unsigned char *out, int code,
    const char *reason, size_t reason_len);

/* 1 if buf is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) */
int ngx_http_reverse_mcp_ws_utf8_valid(const unsigned char *buf, size_t len);

/* 1 if code may appear in a close frame on the wire (RFC 6455 7.4) */
int ngx_http_reverse_mcp_ws_close_code_valid(int code);

/*
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key (OpenSSL SHA-1 + base64):
 * writes 28 characters (no NUL) to out.  Returns 0, or -1 on error.
 */
int ngx_http_reverse_mcp_ws_accept_key(const unsigned char *key,
    size_t key_len, unsigned char out[28]);

/*
 * Check a Sec-WebSocket-Key: it must be base64 that decodes to exactly 16
 * bytes (24 characters with "==" padding).  Returns 1 if valid.
 */
int ngx_http_reverse_mcp_ws_key_valid(const unsigned char *key, size_t len);


#endif /* _NGX_HTTP_REVERSE_MCP_WS_CODEC_H_INCLUDED_ */
