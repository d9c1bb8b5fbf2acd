export { renderTable, type TableOptions } from './table.js'
export { renderHtml } from './html.js'
export { esc, makeScale, MAX_FLOW_ROWS, type Scale } from './svg.js'
export { saveReport, listReports, loadReport, summarize, reportsDir, type ReportSummary } from './store.js'
