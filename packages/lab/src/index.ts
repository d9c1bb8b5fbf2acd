/*
 * @hafw/lab: real Debian hosts for an inventory on this machine (systemd-nspawn + network
 * namespaces), probe hosts, and the SSH overlay that lets every other command reach them.
 */
export { labUp, type LabUpResult } from './up.js'
export { labDown, type LabDownResult } from './down.js'
export { labStatus, labProbes, labExec, findLabHost, type LabStatus, type LabHostStatus, type LabProbe } from './status.js'
export { readOverlay, readOverlayFile, applyOverlay, sshArgv, fingerprint, type Overlay, type OverlayEntry } from './overlay.js'
export { planLab, mgmtSubnet, probeIPv6, hostIpLines, hostSysctls, probeIpLines, IPV6_NS_SYSCTLS, ECHO_PORT, type LabPlan, type HostPlan, type ProbePlan, type SegmentPlan } from './plan.js'
export { ensureRootfs, rootfsPath, rootfsKey, aptMirror, PACKAGES as ROOTFS_PACKAGES } from './rootfs.js'
export { overlayPath, siteDir, labSites } from './state.js'
export { requireRoot, requireTools, LAB_TOOLS } from './host.js'
export { formatLabStatus, table } from './format.js'
export { loadInventoryForLab } from './load.js'
