/** The browser-busy page's dedicated Worker: hosts the session for the `worker` mode. */
import { nativeWebTransportConnector } from '@quiver/session';
import { hostSessions } from '@quiver/session/worker-host';

hostSessions({ connectors: { webtransport: nativeWebTransportConnector } });
