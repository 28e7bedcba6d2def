import streamlit as st
st.title("jobs")
st.info("Coming soon")
