/* The parts of liblinphone's C API that callhelper-phone uses. */
#include <linphone/core.h>
#include <linphone/logging.h>
#include <bctoolbox/list.h>
/* The call's audio stream and its ticker (callhelper-phone gives the stream its ticker, so
 * that the first packet does not wait for a tick that ran before the graph was ready). */
#include <mediastreamer2/mediastream.h>
#include <mediastreamer2/msticker.h>
/* Exported by liblinphone (LINPHONE_PUBLIC in coreapi/private_functions.h, 5.1) but not
 * declared in its installed headers. */
MediaStream *linphone_call_get_stream(LinphoneCall *call, LinphoneStreamType type);
