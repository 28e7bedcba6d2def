import streamlit as st
st.title("predict")
st.info("Coming soon")
